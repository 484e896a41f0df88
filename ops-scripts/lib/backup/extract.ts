// Unpacking a base backup (tar files, compressed or not) into a directory,
// as the cluster's OS user so the result can be started as a cluster.
import { copyFileSync, chownSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { failed } from '../errors.ts';
import { ensurePrivateDir } from '../files.ts';
import { run, type OsUser } from '../run.ts';

export function tarArgs(file: string): string[] {
  if (file.endsWith('.zst')) return ['-I', 'zstd'];
  if (file.endsWith('.lz4')) return ['-I', 'lz4'];
  if (file.endsWith('.gz')) return ['-z'];
  return [];
}

/** Extracts a base backup directory's base.tar* into `target` and pg_wal.tar* into target/pg_wal; copies backup_manifest when asked. */
export async function extractBaseBackup(dir: string, target: string, opts: { as?: OsUser; withManifest?: boolean } = {}): Promise<void> {
  const files = readdirSync(dir);
  const base = files.find((f) => /^base\.tar(\.\w+)?$/.test(f));
  if (!base) throw failed(`no base.tar file in ${dir}`);
  ensurePrivateDir(target, opts.as);
  await run('tar', ['-x', ...tarArgs(base), '-f', join(dir, base), '-C', target], { as: opts.as, dieWithParent: true });
  const wal = files.find((f) => /^pg_wal\.tar(\.\w+)?$/.test(f));
  if (wal) {
    ensurePrivateDir(join(target, 'pg_wal'), opts.as);
    await run('tar', ['-x', ...tarArgs(wal), '-f', join(dir, wal), '-C', join(target, 'pg_wal')], { as: opts.as, dieWithParent: true });
  }
  if (opts.withManifest && existsSync(join(dir, 'backup_manifest'))) {
    copyFileSync(join(dir, 'backup_manifest'), join(target, 'backup_manifest'));
    if (opts.as) chownSync(join(target, 'backup_manifest'), opts.as.uid, opts.as.gid);
  }
}
