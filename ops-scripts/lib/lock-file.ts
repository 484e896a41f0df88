// A lock file holding the owner's pid and start time, for jobs that must not
// overlap. A lock left by a dead process is taken over; a live holder means
// the second run is refused (exit 3) with the holder named.
import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { refused } from './errors.ts';
import { processAlive } from './process.ts';

interface LockInfo {
  pid: number;
  startedAt: string;
  job: string;
}

function readLock(path: string): LockInfo | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
  } catch {
    return undefined;
  }
}

function acquire(path: string, info: LockInfo): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, JSON.stringify(info));
      } finally {
        closeSync(fd);
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readLock(path);
    // An unreadable lock younger than a few seconds is one being written right now.
    const st = statSync(path, { throwIfNoEntry: false });
    const fresh = !holder && st !== undefined && Date.now() - st.mtimeMs < 5000;
    if ((holder && processAlive(holder.pid)) || fresh) {
      throw refused(
        `${holder?.job ?? 'another run'} is already running` +
          `${holder ? ` (pid ${holder.pid}, since ${holder.startedAt})` : ''}; lock ${path}`,
        'wait for it to finish, then run again',
      );
    }
    rmSync(path, { force: true }); // the holder is gone: take the lock over
  }
  throw refused(`could not take the lock ${path}: another run took it at the same moment`, 'run again');
}

/** Takes the lock for `job` (or refuses, exit 3); returns its release. */
export function acquireLockFile(path: string, job: string): () => void {
  acquire(path, { pid: process.pid, startedAt: new Date().toISOString(), job });
  return () => {
    if (readLock(path)?.pid === process.pid) rmSync(path, { force: true });
  };
}
