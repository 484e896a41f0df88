// Which jobs exclude which, declared once (as pgbackrest declares each
// command's lock type). The command layer takes a job's file locks before the
// job runs and releases them after; two jobs that name the same lock never
// run at once, and the second is refused (exit 3) naming the holder. Server
// locks are taken on the server by the job's own connection, so runs from two
// hosts against one server exclude each other too.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { acquireLockFile } from './lock-file.ts';
import { statePaths, type StatePaths } from './state.ts';
import { LAYOUT } from './backup/layout.ts';

export const FILE_LOCKS = {
  /** The local stack: its servers, state directory and the desired state applied to them. */
  stack: { dir: (p: StatePaths) => p.root, file: 'up.lock' },
  /** The backup repository: a new backup and retention (which removes backups and WAL). */
  repository: { dir: (p: StatePaths) => p.repoDir, file: LAYOUT.lock },
  /** Recovery drills: their canaries, scratch clusters, history and metrics. */
  drill: { dir: (p: StatePaths) => p.root, file: 'drill.lock' },
} as const;
export type FileLock = keyof typeof FILE_LOCKS;

/** Advisory locks on the server, by key. */
export const SERVER_LOCKS = {
  /** One vacuum run at a time ('edupvac' in ASCII). */
  vacuum: 0x65647570766163n,
  // node-pg-migrate takes its own advisory lock around every migration run.
} as const;

/** Every job that takes a lock, and which; a job not listed takes none (it only reads, or is per-file idempotent). */
export const JOB_LOCKS: Readonly<Record<string, { file?: readonly FileLock[]; server?: keyof typeof SERVER_LOCKS }>> = {
  up: { file: ['stack'] },
  down: { file: ['stack'] },
  failover: { file: ['stack'] },
  backup: { file: ['repository'] },
  'backup:prune': { file: ['repository'] },
  drill: { file: ['drill'] },
  vacuum: { server: 'vacuum' },
};

/**
 * Takes the file locks the table gives `job`; returns their release. A lock
 * whose directory does not exist yet (or is not a directory) is not taken:
 * nothing is there to guard, the job itself reports a bad path, and a job
 * refused for bad input must not have made a directory.
 */
export function acquireJobLocks(job: string, label = job, given?: StatePaths): () => void {
  const held: Array<() => void> = [];
  const names = JOB_LOCKS[job]?.file ?? [];
  // Only a job with locks pays for the paths (wal:fetch runs once per WAL segment and takes none).
  const paths = names.length ? (given ?? statePaths()) : undefined;
  try {
    for (const name of names) {
      const lock = FILE_LOCKS[name];
      const dir = lock.dir(paths!);
      if (statSync(dir, { throwIfNoEntry: false })?.isDirectory())
        held.push(acquireLockFile(join(dir, lock.file), label));
    }
  } catch (err) {
    for (const release of held.reverse()) release();
    throw err;
  }
  return () => {
    for (const release of held.reverse()) release();
  };
}
