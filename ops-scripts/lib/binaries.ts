// Finding the PostgreSQL and Redis binaries on this host: an env var
// overrides; otherwise PATH, `pg_config --bindir` and the Debian layout
// /usr/lib/postgresql/<major>/bin are searched and the newest major wins.
import { accessSync, constants, existsSync, readdirSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { badInput } from './errors.ts';
import { isRoot } from './os-user.ts';
import type { Logger } from './logger.ts';
import { run } from './run.ts';
import { settingsFromEnv } from './settings.ts';

/** The server and client programs a cluster needs, all from one directory. */
export const PG_PROGRAMS = ['postgres', 'initdb', 'pg_ctl', 'pg_isready', 'psql', 'pg_dump', 'pg_basebackup'] as const;

export interface PgBinaries {
  bindir: string;
  major: number;
  version: string;
  /** Where the server's loadable modules live (basic_archive.so, pg_stat_statements.so). */
  pkglibdir: string;
  bin(name: string): string;
}

const isExecutable = (path: string) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

function pathDirs(): string[] {
  return (process.env.PATH ?? '').split(':').filter(Boolean);
}

async function candidateBindirs(): Promise<string[]> {
  const dirs = new Set<string>();
  for (const dir of pathDirs()) {
    const initdb = join(dir, 'initdb');
    if (isExecutable(initdb)) dirs.add(dirname(realpathSync(initdb)));
  }
  for (const dir of pathDirs()) {
    const pgConfig = join(dir, 'pg_config');
    if (!isExecutable(pgConfig)) continue;
    const r = await run(pgConfig, ['--bindir'], { nothrow: true });
    if (r.code === 0 && r.stdout.trim()) dirs.add(r.stdout.trim());
  }
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    for (const major of readdirSync(debian)) dirs.add(join(debian, major, 'bin'));
  }
  return [...dirs];
}

async function describeBindir(bindir: string): Promise<PgBinaries | undefined> {
  if (!PG_PROGRAMS.every((p) => isExecutable(join(bindir, p)))) return undefined;
  const r = await run(join(bindir, 'postgres'), ['--version'], { nothrow: true });
  const m = /\(PostgreSQL\) (\d+)(\.\d+)?/.exec(r.stdout);
  if (r.code !== 0 || !m) return undefined;
  const pgConfig = join(bindir, 'pg_config');
  let pkglibdir = join(dirname(bindir), 'lib');
  if (isExecutable(pgConfig)) {
    const c = await run(pgConfig, ['--pkglibdir'], { nothrow: true });
    if (c.code === 0 && c.stdout.trim()) pkglibdir = c.stdout.trim();
  }
  return {
    bindir,
    major: Number(m[1]),
    version: `${m[1]}${m[2] ?? ''}`,
    pkglibdir,
    bin: (name) => join(bindir, name),
  };
}

/** Every usable PostgreSQL installation, newest major first. */
export async function listPgInstallations(): Promise<PgBinaries[]> {
  const found: PgBinaries[] = [];
  for (const dir of await candidateBindirs()) {
    const b = await describeBindir(dir);
    if (b && !found.some((f) => f.bindir === b.bindir)) found.push(b);
  }
  return found.sort((a, b) => b.major - a.major);
}

export async function findPgBinaries(opts: { minMajor: number; major?: number }): Promise<PgBinaries | undefined> {
  const override = settingsFromEnv().host.pgBinDir;
  if (override) {
    const b = await describeBindir(override);
    if (!b) {
      throw badInput(
        `EDUPULSE_PG_BINDIR=${override} does not hold PostgreSQL's programs (${PG_PROGRAMS.join(', ')})`,
        'point it at a PostgreSQL bin directory, for example /usr/lib/postgresql/15/bin, or unset it',
      );
    }
    return b;
  }
  const all = await listPgInstallations();
  return all.find((b) => (opts.major === undefined ? b.major >= opts.minMajor : b.major === opts.major));
}

export async function findRedisServer(): Promise<string | undefined> {
  const override = settingsFromEnv().host.redisServer;
  if (override) {
    if (!isExecutable(override)) {
      throw badInput(`EDUPULSE_REDIS_SERVER=${override} is not an executable`, 'point it at redis-server, or unset it');
    }
    return override;
  }
  for (const dir of [...pathDirs(), '/usr/bin', '/usr/local/bin', '/usr/sbin']) {
    const p = join(dir, 'redis-server');
    if (isExecutable(p)) return p;
  }
  return undefined;
}

export interface StackBinaries {
  pg: PgBinaries;
  redisServer: string;
}

const DEBIAN_PACKAGES = ['postgresql', 'postgresql-contrib', 'redis-server'];

/**
 * The binaries the local stack needs. When missing and we are root on a
 * Debian-like system, they are installed with apt-get; otherwise exit 2 naming
 * what to install.
 */
export async function ensureStackBinaries(minMajor: number, logger?: Logger): Promise<StackBinaries> {
  let pg = await findPgBinaries({ minMajor });
  let redisServer = await findRedisServer();
  if (pg && redisServer) return { pg, redisServer };
  const missing = [!pg && `PostgreSQL ${minMajor} or newer (server and client tools)`, !redisServer && 'redis-server']
    .filter(Boolean)
    .join(' and ');
  if (isRoot() && existsSync('/usr/bin/apt-get')) {
    logger?.log({ event: 'install', packages: DEBIAN_PACKAGES });
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    await run('apt-get', ['update'], { env, logger });
    await run('apt-get', ['install', '-y', '--no-install-recommends', ...DEBIAN_PACKAGES], { env, logger });
    pg = await findPgBinaries({ minMajor });
    redisServer = await findRedisServer();
    if (pg && redisServer) return { pg, redisServer };
  }
  throw badInput(
    `${missing} not found on this host`,
    `install them (Debian/Ubuntu: apt-get install ${DEBIAN_PACKAGES.join(' ')}), ` +
      'or set EDUPULSE_PG_BINDIR / EDUPULSE_REDIS_SERVER to where they are',
  );
}
