// Cluster control with PostgreSQL's own tools (initdb, pg_ctl, pg_isready),
// run as the cluster's OS user. Used by the local stack, the test harness and
// (later) restore and drill.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync, appendFileSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { failed } from './errors.ts';
import { ensurePrivateDir, writeFileAtomic } from './files.ts';
import type { Logger } from './logger.ts';
import { processCommand } from './process.ts';
import { run, tail, type OsUser } from './run.ts';
import type { PgBinaries } from './binaries.ts';

export interface ClusterSpec {
  pg: PgBinaries;
  dataDir: string;
  /** Where the cluster's socket lives (created 0700); none for a TCP-only cluster. */
  socketDir?: string;
  logFile: string;
  port: number;
  as?: OsUser;
  logger?: Logger;
}

const CONF_FILE = 'edupulse.conf';

/** A postgresql.conf value, quoted. */
const confValue = (v: string) => `'${v.replace(/'/g, "''")}'`;

export function renderConf(params: Record<string, string>): string {
  const lines = Object.entries(params).map(([k, v]) => `${k} = ${confValue(v)}`);
  return `# Written by edupulse-db from infra/settings.ts; changes here are overwritten.\n${lines.join('\n')}\n`;
}

/**
 * initdb into `initDir`, then rename it to `dataDir`: a killed initdb never
 * leaves something that looks like a cluster. The superuser password comes
 * from a file (never argv) that is removed afterwards.
 */
export async function initCluster(
  spec: ClusterSpec,
  opts: {
    initDir: string;
    superuser: string;
    password: string;
    checksums: boolean;
  },
): Promise<void> {
  const { pg, as, logger } = spec;
  rmSync(opts.initDir, { recursive: true, force: true });
  logger?.log({ event: 'cluster.init', dataDir: spec.dataDir });
  const pwfile = `${opts.initDir}.pw`;
  writeFileAtomic(pwfile, opts.password + '\n', { mode: 0o600, owner: as });
  try {
    await run(
      pg.bin('initdb'),
      [
        '-D',
        opts.initDir,
        '-U',
        opts.superuser,
        `--pwfile=${pwfile}`,
        '--auth-host=scram-sha-256',
        '--auth-local=peer',
        '-E',
        'UTF8',
        '--locale=C.UTF-8',
        ...(opts.checksums ? ['--data-checksums'] : []),
      ],
      { as, logger, env: { LC_ALL: 'C.UTF-8' } },
    );
  } finally {
    rmSync(pwfile, { force: true });
  }
  appendFileSync(join(opts.initDir, 'postgresql.conf'), `\ninclude_if_exists = '${CONF_FILE}'\n`);
  renameSync(opts.initDir, spec.dataDir);
}

/**
 * Writes our settings file, pg_hba.conf and pg_ident.conf into the data
 * directory. Returns whether anything changed (the caller reloads).
 */
export function configureCluster(
  spec: ClusterSpec,
  files: { params: Record<string, string>; hba: string; ident: string },
): boolean {
  const wanted: Array<[string, string]> = [
    [CONF_FILE, renderConf(files.params)],
    ['pg_hba.conf', files.hba],
    ['pg_ident.conf', files.ident],
  ];
  let changed = false;
  for (const [name, content] of wanted) {
    const path = join(spec.dataDir, name);
    if (existsSync(path) && readFileSync(path, 'utf8') === content) continue;
    writeFileAtomic(path, content, { mode: 0o600, owner: spec.as });
    changed = true;
  }
  return changed;
}

/** Running: postmaster.pid names a live (not zombie) postgres process. */
export async function clusterRunning(spec: Pick<ClusterSpec, 'dataDir'>): Promise<boolean> {
  const pid = postmasterPid(spec.dataDir);
  return pid !== undefined && /postgres|postmaster/.test(processCommand(pid) ?? '');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * pg_ctl start, waiting until it accepts connections. A stale postmaster.pid
 * (the postmaster was killed) is handled by PostgreSQL itself; orphaned
 * backends of a killed postmaster can hold the old shared memory for a moment,
 * so a start that fails on that is retried.
 */
export async function startCluster(spec: ClusterSpec, opts: { timeoutSeconds?: number } = {}): Promise<void> {
  if (spec.socketDir) ensurePrivateDir(spec.socketDir, spec.as);
  if (!existsSync(spec.logFile)) {
    writeFileSync(spec.logFile, '', { mode: 0o600 });
    if (spec.as) chownSync(spec.logFile, spec.as.uid, spec.as.gid);
  }
  spec.logger?.log({ event: 'cluster.start', dataDir: spec.dataDir, port: spec.port });
  const args = ['start', '-D', spec.dataDir, '-l', spec.logFile, '-w', '-t', String(opts.timeoutSeconds ?? 60), '-s'];
  for (let attempt = 1; ; attempt++) {
    const r = await run(spec.pg.bin('pg_ctl'), args, { as: spec.as, nothrow: true, logger: spec.logger });
    if (r.code === 0) return;
    const log = existsSync(spec.logFile) ? tail(readFileSync(spec.logFile, 'utf8'), 20) : '';
    if (
      attempt < 10 &&
      /still in use|already in use|could not bind|lock file .* already exists/i.test(log + r.stderr)
    ) {
      await sleep(500);
      continue;
    }
    throw failed(
      `PostgreSQL in ${spec.dataDir} did not start (pg_ctl exited ${r.code})\n${tail(r.stderr || r.stdout)}\n${log}`,
      `see ${spec.logFile}`,
    );
  }
}

export async function stopCluster(spec: ClusterSpec, mode: 'smart' | 'fast' | 'immediate' = 'fast'): Promise<boolean> {
  if (!(await clusterRunning(spec))) return false;
  spec.logger?.log({ event: 'cluster.stop', dataDir: spec.dataDir, mode });
  await run(spec.pg.bin('pg_ctl'), ['stop', '-D', spec.dataDir, '-m', mode, '-w', '-t', '120', '-s'], {
    as: spec.as,
    logger: spec.logger,
  });
  return true;
}

export async function reloadCluster(spec: ClusterSpec): Promise<void> {
  await run(spec.pg.bin('pg_ctl'), ['reload', '-D', spec.dataDir, '-s'], { as: spec.as, logger: spec.logger });
}

/** The postmaster's pid from postmaster.pid, if the file is there. */
export function postmasterPid(dataDir: string): number | undefined {
  const f = join(dataDir, 'postmaster.pid');
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, 'utf8').split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
