// Files that hold secrets or catalog entries: written whole or not at all
// (temp file, fsync, rename), readable by their owner only.
import {
  closeSync,
  fsyncSync,
  openSync,
  renameSync,
  writeSync,
  chownSync,
  mkdirSync,
  chmodSync,
  rmSync,
  existsSync,
  statfsSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { OsUser } from './run.ts';

export function writeFileAtomic(path: string, content: string, opts: { mode?: number; owner?: OsUser } = {}): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', opts.mode ?? 0o600);
  try {
    try {
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (opts.owner) chownSync(tmp, opts.owner.uid, opts.owner.gid);
    renameSync(tmp, path);
  } catch (err) {
    // A failed write (disk full, the path a directory) leaves nothing behind: not even its temp file.
    rmSync(tmp, { force: true });
    throw err;
  }
  syncFile(dirname(path));
}

/** fsync of a file (or directory) written by another process, so it is on disk before it is counted. */
export function syncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** mkdir -p with mode 0700; every directory it creates (and the last one) owned by `owner` when given. */
export function ensurePrivateDir(path: string, owner?: OsUser): void {
  const first = mkdirSync(path, { recursive: true, mode: 0o700 });
  chmodSync(path, 0o700);
  if (!owner) return;
  // mkdirSync returns the first directory it created; chown from there down.
  for (let dir = path; ; dir = dirname(dir)) {
    chownSync(dir, owner.uid, owner.gid);
    if (!first || dir === first || dirname(dir) === dir) break;
  }
}

/**
 * The filesystem that holds `path` (or its nearest existing ancestor): bytes free for an unprivileged user, and its
 * size.
 */
export function fsSpace(path: string): { free: number; size: number } {
  let p = resolve(path);
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  const st = statfsSync(p);
  return { free: st.bavail * st.bsize, size: st.blocks * st.bsize };
}
