// Reading an archived WAL file back in the form PostgreSQL and pg_waldump
// read: a compressed one (<name>.zst, see infra/wal-archive.ts) is
// decompressed, a plain one (an archive from before compression) copied.
import { chownSync, copyFileSync, renameSync, rmSync } from 'node:fs';
import { syncFile } from '../files.ts';
import { basename, dirname, join } from 'node:path';
import { run, type OsUser } from '../run.ts';
import { WAL_ZSTD } from './layout.ts';
import { decryptFile, isEncrypted, requireIdentity } from './crypt.ts';

/**
 * Writes the WAL file stored at `stored` to `target` as the server wrote it (via a temp name, so
 * `target` is whole or absent): decrypted with `identityFile` when the name ends in .age,
 * decompressed when it ends in .zst (then), copied otherwise. The result is owned by `as`; with
 * `runAs` the tools run as `as` too (reading what that user may read, as its restore_command would).
 */
export async function unpackWal(
  stored: string,
  target: string,
  opts: { as?: OsUser; identityFile?: string; runAs?: boolean } = {},
): Promise<void> {
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.part`);
  const as = opts.runAs ? opts.as : undefined;
  let source = stored;
  try {
    if (isEncrypted(stored)) {
      source = `${tmp}${WAL_ZSTD}`;
      await decryptFile(stored, source, requireIdentity(opts.identityFile, `archived WAL ${basename(stored)}`), as);
    }
    if (source.endsWith(WAL_ZSTD))
      await run('zstd', ['-q', '-d', '-f', '-o', tmp, '--', source], { as, dieWithParent: true });
    else if (as) await run('cp', ['--', source, tmp], { as, dieWithParent: true });
    else copyFileSync(source, tmp);
    if (opts.as && !as) chownSync(tmp, opts.as.uid, opts.as.gid);
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    if (source !== stored) rmSync(source, { force: true });
  }
}

/** Compresses `path` to `<path>.zst` (zstd at `level`, synced to disk), then removes `path`. */
export async function zstdFile(path: string, level: number, as?: OsUser): Promise<string> {
  const out = `${path}${WAL_ZSTD}`;
  await run('zstd', ['-q', `-${level}`, '-f', '-o', out, '--', path], { as, dieWithParent: true });
  syncFile(out);
  rmSync(path);
  return out;
}

/**
 * The restore_command for a local archive directory: the compressed copy, else a plain one;
 * exit 1 only when neither is there (the end of the archive), 126 when one is there but cannot
 * be read (PostgreSQL then stops with an error instead of taking it for the end and promoting early).
 */
export function localRestoreCommand(walDir: string, identityFile?: string): string {
  const z = `${walDir}/%f${WAL_ZSTD}`;
  const p = `${walDir}/%f`;
  // Encrypted: decrypted with the identity (readable by the server's OS user, see crypt.ts) into a temp file first.
  const encrypted = `elif [ -e "${z}.age" ]; then age -d -i '${identityFile ?? '/nonexistent'}' -o "%p.zst" "${z}.age" && zstd -q -d -f --rm -o "%p" "%p.zst" || { rm -f "%p.zst"; exit 126; };`;
  return `if [ -e "${z}" ]; then zstd -q -d -f -o "%p" "${z}" || exit 126; ${encrypted} elif [ -e "${p}" ]; then cp "${p}" "%p" || exit 126; else exit 1; fi`;
}
