// Validating a restore's target directory (pgbackrest's restore: validate):
// new or empty, and never inside or around a live directory.
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { refused } from '../errors.ts';

/** A path with the symlinks of its nearest existing ancestor resolved (the rest does not exist yet). */
export function realTarget(p: string): string {
  const rest: string[] = [];
  let existing = p;
  while (!existsSync(existing)) {
    rest.unshift(basename(existing));
    existing = dirname(existing);
  }
  return join(realpathSync(existing), ...rest);
}

const within = (a: string, b: string) => a === b || a.startsWith(b.endsWith(sep) ? b : b + sep);

/** The live cluster's tablespaces: where the links in pg_tblspc point. */
export function tablespaceDirs(dataDir: string): string[] {
  const dir = join(dataDir, 'pg_tblspc');
  try {
    return readdirSync(dir).map((l) => realpathSync(join(dir, l)));
  } catch {
    return [];
  }
}

/**
 * Refuses (exit 3) a target that is not empty, or that is inside or contains
 * a live directory (the data directory, a tablespace, the repository and its
 * WAL archive, the rest of the state directory), symlinks resolved.
 */
export function checkTargetDir(to: string, liveDataDir?: string, protectedDirs: Record<string, string> = {}): void {
  const abs = resolve(to);
  const real = realTarget(abs);
  const live: Record<string, string> = {
    ...(liveDataDir ? { "the live cluster's data directory": liveDataDir } : {}),
    ...protectedDirs,
  };
  for (const tbs of liveDataDir ? tablespaceDirs(liveDataDir) : [])
    live[`a tablespace of the live cluster (${tbs})`] = tbs;
  for (const [what, dir] of Object.entries(live)) {
    if (!existsSync(dir)) continue;
    const d = realpathSync(dir);
    if (real === d)
      throw refused(
        `${abs} is ${what}; a restore never goes there`,
        'restore into a new directory, then swap deliberately',
      );
    if (within(real, d))
      throw refused(
        `${abs} is inside ${what} (${d}); a restore never writes there`,
        'give --to a new directory outside the live cluster and the repository',
      );
    if (within(d, real))
      throw refused(
        `${abs} contains ${what} (${d}); a restore never writes around it`,
        'give --to a new directory outside the live cluster and the repository',
      );
  }
  if (existsSync(abs) && readdirSync(abs).length > 0) {
    throw refused(
      `${abs} is not empty; a restore never overwrites a directory`,
      'give a new or empty directory with --to',
    );
  }
  if (existsSync(join(abs, 'postmaster.pid'))) throw refused(`${abs} holds a running cluster`);
}
