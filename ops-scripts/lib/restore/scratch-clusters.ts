// Clusters a restore (--start) or a kept drill (--keep) left running: found,
// stopped as their own OS user (as root, pg_ctl refuses to run; the data
// directory's owner runs it), and, for a drill's scratch cluster or a restored
// one, removed. The live cluster is never one of them.
import { existsSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { findPgBinaries } from '../binaries.ts';
import { clusterRunning, postmasterPid, stopCluster } from '../cluster.ts';
import { badInput, refused } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { isRoot, userByUid } from '../os-user.ts';
import type { OsUser } from '../run.ts';
import { dataDirMajor } from '../state.ts';

export interface ScratchCluster {
  dataDir: string;
  running: boolean;
  port?: number;
  pid?: number;
  restored: boolean;
}

/** A data directory made by restore: its edupulse.conf carries the restore_command restore wrote. */
const madeByRestore = (dataDir: string) => {
  const conf = join(dataDir, 'edupulse.conf');
  return existsSync(conf) && /^restore_command = /m.test(readFileSync(conf, 'utf8'));
};

export async function describeScratch(dataDir: string): Promise<ScratchCluster> {
  const running = await clusterRunning({ dataDir });
  const lines =
    running && existsSync(join(dataDir, 'postmaster.pid'))
      ? readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')
      : [];
  return {
    dataDir,
    running,
    pid: running ? postmasterPid(dataDir) : undefined,
    port: lines[3] ? Number(lines[3]) : undefined,
    restored: madeByRestore(dataDir),
  };
}

/** The drills' scratch clusters kept with --keep (under <state>/drills/<id>/data). */
export async function keptDrills(scratchRoot: string): Promise<ScratchCluster[]> {
  if (!existsSync(scratchRoot)) return [];
  const dirs = readdirSync(scratchRoot)
    .map((d) => join(scratchRoot, d, 'data'))
    .filter((d) => existsSync(join(d, 'PG_VERSION')));
  return Promise.all(dirs.map(describeScratch));
}

/** Stops the cluster in `dataDir` as the directory's owner; with `remove`, deletes it (only a restored or drill cluster). */
export async function stopScratch(
  dir: string,
  opts: { liveDataDir: string; remove?: boolean; logger?: Logger },
): Promise<{ stopped: boolean; removed: boolean }> {
  const dataDir = resolve(dir);
  const major = existsSync(dataDir) ? dataDirMajor(dataDir) : undefined;
  if (major === undefined)
    throw badInput(
      `${dataDir} is not a PostgreSQL data directory (no PG_VERSION)`,
      'give the directory a restore or a kept drill made',
    );
  if (existsSync(opts.liveDataDir) && realpathSync(dataDir) === realpathSync(opts.liveDataDir)) {
    throw refused(
      `${dataDir} is the live cluster; this stops only restored and kept drill clusters`,
      'stop the stack with `edupulse-db down`',
    );
  }
  // The stack's own servers (<state>/pg/<node>: the primary and its standbys, which carry a restore_command too)
  // are never this job's to stop or remove, whichever node is primary now.
  const stackDir = dirname(opts.liveDataDir);
  if (existsSync(stackDir) && realpathSync(dataDir).startsWith(`${realpathSync(stackDir)}/`))
    throw refused(
      `${dataDir} is a server of the stack (a standby or the primary); this stops only restored and kept drill clusters`,
      'stop the stack with `edupulse-db down`',
    );
  if (opts.remove && !madeByRestore(dataDir))
    throw refused(`${dataDir} was not made by a restore or a drill; it is not removed`, 'stop it without --remove');
  const pg = await findPgBinaries({ minMajor: major, major });
  if (!pg) throw badInput(`${dataDir} is PostgreSQL ${major}, whose binaries this host lacks`);
  const st = statSync(dataDir);
  // pg_ctl as the directory's owner: as root the only way, otherwise the invoking user must own it.
  const as: OsUser | undefined =
    isRoot() && st.uid !== 0
      ? (userByUid(st.uid) ?? { name: String(st.uid), uid: st.uid, gid: st.gid, home: '/' })
      : undefined;
  const stopped = await stopCluster(
    { pg, dataDir, logFile: join(dataDir, 'restore.log'), port: 0, as, logger: opts.logger },
    'fast',
  );
  // A drill's scratch cluster goes with its <state>/drills/<id> directory; a restored one is just its directory.
  const drillDir =
    basename(dirname(dirname(dataDir))) === 'drills' && basename(dataDir) === 'data' ? dirname(dataDir) : undefined;
  if (opts.remove) rmSync(drillDir ?? dataDir, { recursive: true, force: true });
  return { stopped, removed: Boolean(opts.remove) };
}
