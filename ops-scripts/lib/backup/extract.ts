// Unpacking a base backup (tar files, compressed or not) into a directory,
// as the cluster's OS user so the result can be started as a cluster.
import { copyFileSync, chownSync, existsSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { AGE_SUFFIX, isEncrypted, requireIdentity } from './crypt.ts';
import { failed } from '../errors.ts';
import { ensurePrivateDir } from '../files.ts';
import { run, type OsUser } from '../run.ts';

export function tarArgs(file: string): string[] {
  if (file.endsWith('.zst')) return ['-I', 'zstd'];
  if (file.endsWith('.lz4')) return ['-I', 'lz4'];
  if (file.endsWith('.gz')) return ['-z'];
  return [];
}

// GNU tar counts records of 512-byte blocks times its default blocking factor (20) read from the
// (decompressed) archive; a checkpoint every 500 records reports about every 5 MB.
const RECORD_BYTES = 10240;
const CHECKPOINT_RECORDS = 500;

/**
 * tar, with its own checkpoints turned into a count of archive bytes read when asked. An encrypted
 * file (.age) is decrypted by age with `identityFile` straight into tar, never to disk.
 */
function untar(
  file: string,
  into: string,
  as: OsUser | undefined,
  onBytes?: (bytes: number) => void,
  identityFile?: string,
) {
  const progress = onBytes ? [`--checkpoint=${CHECKPOINT_RECORDS}`, '--checkpoint-action=echo=%u'] : [];
  const args = isEncrypted(file)
    ? ([
        '/bin/bash',
        [
          '-o',
          'pipefail',
          '-c',
          `age -d -i "$1" -- "$2" | tar -x ${[...tarArgs(file.slice(0, -AGE_SUFFIX.length)), ...progress].join(' ')} -f - -C "$3"`,
          'untar',
          requireIdentity(identityFile, basename(file)),
          file,
          into,
        ],
      ] as const)
    : (['tar', ['-x', ...tarArgs(file), ...progress, '-f', file, '-C', into]] as const);
  return run(args[0], [...args[1]], {
    as,
    dieWithParent: true,
    onStderr:
      onBytes &&
      ((chunk) => {
        for (const m of chunk.matchAll(/tar: (\d+)\n/g)) onBytes(Number(m[1]) * RECORD_BYTES);
      }),
  });
}

/**
 * Extracts a base backup directory's base.tar* into `target` and pg_wal.tar* into target/pg_wal;
 * copies backup_manifest when asked. `onBytes` hears the uncompressed bytes extracted so far.
 */
export async function extractBaseBackup(
  dir: string,
  target: string,
  opts: { as?: OsUser; withManifest?: boolean; onBytes?: (bytes: number) => void; identityFile?: string } = {},
): Promise<void> {
  const files = readdirSync(dir);
  const base = files.find((f) => /^base\.tar(\.\w+)*$/.test(f));
  if (!base) throw failed(`no base.tar file in ${dir}`);
  ensurePrivateDir(target, opts.as);
  // The second archive's count continues from where the first one's ended.
  let before = 0,
    seen = 0;
  const onBytes =
    opts.onBytes &&
    ((n: number) => {
      seen = before + n;
      opts.onBytes!(seen);
    });
  await untar(join(dir, base), target, opts.as, onBytes, opts.identityFile);
  before = seen;
  const wal = files.find((f) => /^pg_wal\.tar(\.\w+)*$/.test(f));
  if (wal) {
    ensurePrivateDir(join(target, 'pg_wal'), opts.as);
    await untar(join(dir, wal), join(target, 'pg_wal'), opts.as, onBytes, opts.identityFile);
  }
  if (opts.withManifest && existsSync(join(dir, 'backup_manifest'))) {
    copyFileSync(join(dir, 'backup_manifest'), join(target, 'backup_manifest'));
    if (opts.as) chownSync(join(target, 'backup_manifest'), opts.as.uid, opts.as.gid);
  }
}
