// Restores and drills reading the repository, so retention does not remove a
// backup or WAL from under them. Each reader leaves a marker file
// (<repo>/.readers/<pid>.json: pid, start, job) while it runs; retention finds
// the live ones (a marker of a dead process is removed) and defers: the
// nightly backup still completes, and removes the old backups next time.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onInterrupt } from '../interrupt.ts';
import { processAlive } from '../process.ts';

const READERS = '.readers';

export interface Reader {
  pid: number;
  startedAt: string;
  job: string;
}

/** Marks this process as reading `repoDir` until the returned release is called (or the job is interrupted). */
export function registerReader(repoDir: string, job: string): () => void {
  const dir = join(repoDir, READERS);
  const file = join(dir, `${process.pid}.json`);
  // No local repository (a restore from the store on a fresh host): nothing here to guard, and none is made.
  if (!existsSync(repoDir)) return () => {};
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(file, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), job }), {
      mode: 0o600,
    });
  } catch {
    // A repository this process cannot write (a read-only copy): nothing can prune it from here either.
    return () => {};
  }
  const release = () => rmSync(file, { force: true });
  const forget = onInterrupt(release);
  return () => {
    forget();
    release();
  };
}

/** The live readers of `repoDir`; markers left by dead processes are removed. */
export function liveReaders(repoDir: string): Reader[] {
  const dir = join(repoDir, READERS);
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => /^\d+\.json$/.test(f));
  } catch {
    return [];
  }
  const live: Reader[] = [];
  for (const name of names) {
    let reader: Reader | undefined;
    try {
      reader = JSON.parse(readFileSync(join(dir, name), 'utf8')) as Reader;
    } catch {
      reader = undefined;
    }
    if (reader && reader.pid !== process.pid && processAlive(reader.pid)) live.push(reader);
    else if (!reader || reader.pid !== process.pid) rmSync(join(dir, name), { force: true });
  }
  return live;
}

export const describeReaders = (readers: Reader[]) =>
  readers.map((r) => `${r.job} (pid ${r.pid}, since ${r.startedAt})`).join(', ');
