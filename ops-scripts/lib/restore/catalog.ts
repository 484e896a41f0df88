// What a restore reads from the repository, from either backend: the
// physical backups, the archived WAL (names, times, timeline histories),
// named restore points, how to get a base backup's files on local disk, and
// the restore_command that fetches WAL.
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { BackupContext } from '../backup/context.ts';
import { OBJECTS_FILE } from '../backup/offload.ts';
import type { RemoteStore } from '../backup/remote.ts';
import { RECORD_FILE, type BackupRecord } from '../backup/repository.ts';
import type { HistoryEntry } from '../backup/wal.ts';
import { readRemote, remoteHistories } from '../backup/remote-catalog.ts';
import { chownSync } from 'node:fs';
import { PROJECT_ROOT } from '../state.ts';
import { readRestorePoints, type RestorePoint } from './restore-points.ts';
import { backupPath, LAYOUT, walPath } from '../backup/layout.ts';

export interface Catalog {
  source: 'local' | 'remote';
  backups: BackupRecord[];
  walFiles: string[];
  histories: Map<number, HistoryEntry[]>;
  walTime(name: string): string | undefined;
  /** A local path holding an archived WAL file (downloaded first from a store). */
  walPath(name: string): Promise<string>;
  restorePoints: RestorePoint[];
  /** A local directory holding the base backup's files (downloaded first from a store). */
  baseDir(r: BackupRecord): Promise<string>;
  restoreCommand: string;
  cleanup(): void;
}

/** Read when used, not when made: a drill archives WAL between opening the catalog and restoring. */
export function localCatalog(ctx: BackupContext): Catalog {
  return {
    source: 'local',
    get backups() {
      return ctx.repo.list('physical').filter((r) => r.verification.ok && r.physical);
    },
    get walFiles() {
      return ctx.repo.walFiles();
    },
    get histories() {
      return ctx.repo.histories();
    },
    walTime: (name) => statSync(join(ctx.repo.walDir, name)).mtime.toISOString(),
    walPath: async (name) => join(ctx.repo.walDir, name),
    get restorePoints() {
      return readRestorePoints(ctx.repo);
    },
    baseDir: async (r) => ctx.repo.backupDir('physical', r.id),
    // Exit 1 only when the file is not there (the end of the archive); a file that cannot be copied exits 126,
    // which makes PostgreSQL stop with an error instead of taking it for the end and promoting early.
    restoreCommand: `if [ -e "${ctx.repo.walDir}/%f" ]; then cp "${ctx.repo.walDir}/%f" "%p" || exit 126; else exit 1; fi`,
    cleanup() {},
  };
}

/** The store's catalog; base backups are downloaded into a staging directory that cleanup() removes. */
export async function remoteCatalog(ctx: BackupContext, store: RemoteStore, staging: string): Promise<Catalog> {
  const { records, objects, walFiles } = await readRemote(store);
  const histories = await remoteHistories(store, walFiles);
  const points = await store.getText(LAYOUT.restorePoints);
  const { settings } = store;
  const envs = [
    `EDUPULSE_REPO_MODE=${settings.mode}`,
    `EDUPULSE_S3_BUCKET=${settings.bucket}`,
    `EDUPULSE_S3_PREFIX=${settings.prefix}`,
    `EDUPULSE_S3_REGION=${settings.region}`,
    ...(settings.endpoint ? [`EDUPULSE_S3_ENDPOINT=${settings.endpoint}`] : []),
  ];
  return {
    source: 'remote',
    backups: records.filter((r) => r.kind === 'physical' && r.verification.ok && r.physical),
    walFiles,
    histories,
    walTime: (name) => objects.get(walPath(name))?.modified,
    async walPath(name) {
      const dir = join(staging, LAYOUT.wal);
      const path = join(dir, name);
      if (!existsSync(path)) {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        await store.download(walPath(name), path);
      }
      return path;
    },
    restorePoints: points ? JSON.parse(points) : [],
    async baseDir(r) {
      const dir = join(staging, r.id);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      for (const f of r.files) {
        await store.download(`${backupPath('physical', r.id)}/${f.name}`, join(dir, f.name));
        // Extraction runs as the cluster's OS user.
        if (ctx.as) chownSync(join(dir, f.name), ctx.as.uid, ctx.as.gid);
      }
      if (ctx.as) {
        chownSync(staging, ctx.as.uid, ctx.as.gid);
        chownSync(dir, ctx.as.uid, ctx.as.gid);
      }
      return dir;
    },
    // Each segment is fetched from the store by our own command (credentials from the server's environment).
    restoreCommand: `env ${envs.join(' ')} ${process.execPath} ${join(PROJECT_ROOT, 'bin', 'edupulse-db.js')} wal:fetch %f "%p"`,
    cleanup: () => rmSync(staging, { recursive: true, force: true }),
  };
}

export { OBJECTS_FILE, RECORD_FILE };

/**
 * The catalog a restore uses: the object store when asked, or when the local
 * repository holds no physical backup and a store is configured (a fresh
 * host); the local repository otherwise.
 */
export async function openCatalog(
  ctx: BackupContext,
  stagingRoot: string,
  fromRemote: boolean,
): Promise<{ catalog: Catalog; close(): void }> {
  const { RemoteStore, remoteSettings } = await import('../backup/remote.ts');
  const settings = remoteSettings();
  const local = localCatalog(ctx);
  if (!settings || (!fromRemote && local.backups.length)) {
    if (fromRemote)
      throw (await import('../errors.ts')).badInput(
        '--from-remote needs EDUPULSE_REPO_MODE=copy or remote and EDUPULSE_S3_*',
      );
    return { catalog: local, close() {} };
  }
  const store = new RemoteStore(settings);
  const catalog = await remoteCatalog(ctx, store, join(stagingRoot, `remote-${Date.now()}`));
  return {
    catalog,
    close: () => {
      catalog.cleanup();
      store.close();
    },
  };
}
