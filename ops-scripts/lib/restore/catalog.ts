// What a restore reads from the repository, from either backend: the
// physical backups, the archived WAL (names, times, timeline histories),
// named restore points, how to get a base backup's files on local disk, and
// the restore_command that fetches WAL.
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { failed } from '../errors.ts';
import { unpackWal, localRestoreCommand } from '../backup/wal-store.ts';
import { isEncrypted } from '../backup/crypt.ts';
import type { BackupContext } from '../backup/context.ts';
import { OBJECTS_FILE } from '../backup/offload.ts';
import type { RemoteStore } from '../backup/remote.ts';
import { RECORD_FILE, type BackupRecord } from '../backup/repository.ts';
import type { HistoryEntry } from '../backup/wal.ts';
import { readRemote, remoteHistories } from '../backup/remote-catalog.ts';
import { leaseStore, type StoreLease } from '../backup/store-readers.ts';
import { chownSync } from 'node:fs';
import { PROJECT_ROOT } from '../state.ts';
import { readRestorePoints, type RestorePoint } from './restore-points.ts';
import { spoolRestoreCommand, startPrefetch, type Prefetcher } from './prefetch.ts';
import { checkArchive, parseSegment } from '../backup/wal.ts';

/** Downloads the prefetcher runs at once: measured (BENCHMARKS.md, "restore from the store") to keep replay fed. */
const PREFETCH_PARALLEL = 4;
import { backupPath, LAYOUT, WAL_ZSTD, walPath } from '../backup/layout.ts';

export interface Catalog {
  source: 'local' | 'remote';
  backups: BackupRecord[];
  walFiles: string[];
  histories: Map<number, HistoryEntry[]>;
  walTime(name: string): string | undefined;
  /** Whether any archived WAL file is stored encrypted (then a restore needs the identity). */
  readonly walEncrypted: boolean;
  /** A local path holding an archived WAL file (downloaded first from a store). */
  walPath(name: string): Promise<string>;
  restorePoints: RestorePoint[];
  /** A local directory holding the base backup's files (downloaded first from a store). */
  baseDir(r: BackupRecord): Promise<string>;
  restoreCommand: string;
  /** Writes archived WAL file `name`, as the server wrote it, to `target` (owned by the server's OS user). */
  fetchWal(name: string, target: string): Promise<void>;
  /** Fetch the WAL recovery from `backup` reads ahead of replay into the spool the restoreCommand reads (prefetch.ts). */
  prefetch?(backup: BackupRecord): Prefetcher;
  /** From a store: lease it for `job` while reading (retention on any host waits); returns once no retention is at work there. */
  lease?(job: string): Promise<StoreLease>;
  /** From a store: read it again (WAL pushed, or retention at work, since it was opened). */
  refresh?(): Promise<void>;
  cleanup(): void;
}

/**
 * Read when used, not when made: a drill archives WAL between opening the catalog and restoring.
 * Compressed segments pg_waldump reads are unpacked into `staging`, which cleanup() removes.
 */
export function localCatalog(ctx: BackupContext, staging: string): Catalog {
  const identity = ctx.settings.backup.encryption.identityFile;
  const spool = `${staging}-spool`;
  /** Where the archive holds `name` (compressed, encrypted or plain); a file retention took is named. */
  const storedPath = (name: string) => {
    const stored = ctx.repo.walStoredPath(name);
    if (!stored) throw failed(`archived WAL file ${name} is no longer in ${ctx.repo.walDir}`);
    return stored;
  };
  // As the server's OS user: what its restore_command could not read is not read for it either.
  const fetchWal = (name: string, target: string) =>
    unpackWal(storedPath(name), target, { as: ctx.as, identityFile: identity, runAs: true });
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
    get walEncrypted() {
      return [...ctx.repo.walIndex().values()].some(isEncrypted);
    },
    walTime: (name) => {
      const stored = ctx.repo.walStoredPath(name);
      return stored ? statSync(stored).mtime.toISOString() : undefined;
    },
    async walPath(name) {
      const stored = storedPath(name);
      if (!stored.endsWith(WAL_ZSTD) && !isEncrypted(stored)) return stored;
      const path = join(staging, LAYOUT.wal, name);
      if (!existsSync(path)) {
        mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
        await unpackWal(stored, path, { identityFile: identity });
      }
      return path;
    },
    get restorePoints() {
      return readRestorePoints(ctx.repo);
    },
    baseDir: async (r) => ctx.repo.backupDir('physical', r.id),
    // Segments come from the spool the restore job fills ahead of replay, decompressed (and decrypted) on
    // the job's core rather than one zstd process per segment on replay's path; anything else from the archive.
    restoreCommand: spoolRestoreCommand(spool, localRestoreCommand(ctx.repo.walDir, identity)),
    fetchWal,
    prefetch: (backup) => prefetchFor(ctx, backup, spool, ctx.repo.walFiles(), ctx.repo.histories(), fetchWal),
    cleanup: () => rmSync(staging, { recursive: true, force: true }),
  };
}

/** The prefetcher for a restore from `backup`: the segments recovery reads, in order, through `fetch`. */
function prefetchFor(
  ctx: BackupContext,
  backup: BackupRecord,
  spool: string,
  walFiles: string[],
  histories: Map<number, HistoryEntry[]>,
  fetch: (name: string, target: string) => Promise<void>,
): Prefetcher {
  const seg = backup.server.walSegmentBytes;
  const start = parseSegment(backup.physical!.startSegment, seg)!;
  return startPrefetch({
    segments: checkArchive(walFiles, histories, start, seg).segments,
    listing: walFiles,
    fetch,
    spool,
    segmentBytes: seg,
    maxBytes: ctx.settings.backup.walPrefetchMb * 1048576,
    parallel: PREFETCH_PARALLEL,
    as: ctx.as,
    logger: ctx.logger,
  });
}

/** The store's catalog; base backups are downloaded into a staging directory that cleanup() removes. */
export async function remoteCatalog(ctx: BackupContext, store: RemoteStore, staging: string): Promise<Catalog> {
  let listing = await readRemote(store);
  let histories = await remoteHistories(store, listing.walFiles);
  // Archive times recorded by the push (the store's own are upload times, hours later for a nightly push).
  const readTimes = async () => JSON.parse((await store.getText(LAYOUT.walTimes)) ?? '{}') as Record<string, string>;
  let archivedAt = await readTimes();
  const readPoints = async () => JSON.parse((await store.getText(LAYOUT.restorePoints)) ?? '[]') as RestorePoint[];
  let points = await readPoints();
  const { settings } = store;
  const spool = `${staging}-spool`;
  const identity = ctx.settings.backup.encryption.identityFile;
  const fetchWal = async (name: string, target: string) => {
    const stored = listing.walStored.get(name) ?? name;
    // Downloaded beside the target under its stored name, which tells unpackWal how to read it.
    const download = join(dirname(target), `.download-${stored}`);
    try {
      await store.download(walPath(stored), download);
      await unpackWal(download, target, { as: ctx.as, identityFile: identity });
    } finally {
      rmSync(download, { force: true });
    }
  };
  const envs = [
    `EDUPULSE_REPO_MODE=${settings.mode}`,
    `EDUPULSE_S3_BUCKET=${settings.bucket}`,
    `EDUPULSE_S3_PREFIX=${settings.prefix}`,
    `EDUPULSE_S3_REGION=${settings.region}`,
    ...(settings.endpoint ? [`EDUPULSE_S3_ENDPOINT=${settings.endpoint}`] : []),
    // A path, not the key: the file is read by the server's OS user when a segment is encrypted.
    ...(identity ? [`EDUPULSE_BACKUP_AGE_IDENTITY=${identity}`] : []),
  ];
  return {
    source: 'remote',
    get backups() {
      return listing.records.filter((r) => r.kind === 'physical' && r.verification.ok && r.physical);
    },
    get walFiles() {
      return listing.walFiles;
    },
    get histories() {
      return histories;
    },
    get walEncrypted() {
      return [...listing.walStored.values()].some(isEncrypted);
    },
    lease: (job) => leaseStore(store, job, ctx.logger),
    async refresh() {
      listing = await readRemote(store);
      histories = await remoteHistories(store, listing.walFiles);
      archivedAt = await readTimes();
      points = await readPoints();
    },
    walTime: (name) => archivedAt[name] ?? listing.objects.get(walPath(listing.walStored.get(name) ?? name))?.modified,
    async walPath(name) {
      const dir = join(staging, LAYOUT.wal);
      const path = join(dir, name);
      if (!existsSync(path)) {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const stored = listing.walStored.get(name) ?? name;
        // Downloaded under its stored name, which tells unpackWal how to read it.
        await store.download(walPath(stored), join(dir, `.download-${stored}`));
        try {
          await unpackWal(join(dir, `.download-${stored}`), path, { identityFile: identity });
        } finally {
          rmSync(join(dir, `.download-${stored}`), { force: true });
        }
      }
      return path;
    },
    get restorePoints() {
      return points;
    },
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
    // Segments come from the spool the prefetcher fills; anything else is fetched from the store by our own
    // command (credentials from the server's environment).
    restoreCommand: spoolRestoreCommand(
      spool,
      `env ${envs.join(' ')} ${process.execPath} ${join(PROJECT_ROOT, 'bin', 'edupulse-db.js')} wal:fetch %f "%p"`,
    ),
    fetchWal,
    prefetch: (backup) => prefetchFor(ctx, backup, spool, listing.walFiles, histories, fetchWal),
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
  const local = localCatalog(ctx, join(stagingRoot, `local-${process.pid}-${Date.now()}`));
  if (!settings || (!fromRemote && local.backups.length)) {
    if (fromRemote)
      throw (await import('../errors.ts')).badInput(
        '--from-remote needs EDUPULSE_REPO_MODE=copy or remote and EDUPULSE_S3_*',
      );
    return { catalog: local, close: () => local.cleanup() };
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
