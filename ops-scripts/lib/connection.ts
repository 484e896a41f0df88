// Connection details for every job, from one place: DATABASE_URL / REDIS_URL
// when set, the local stack's state otherwise. Descriptions never carry a password.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PgConfig } from './db.ts';
import { badInput } from './errors.ts';
import { readSecrets } from './secrets.ts';
import { statePaths, type StatePaths } from './state.ts';
import { processAlive } from './process.ts';
import { settingsFromEnv } from './settings.ts';

export interface RedisTarget {
  host: string;
  port: number;
  password: string | undefined;
}

export interface Connections {
  /** The application database, as the administrative (super)user. */
  pg: PgConfig;
  redis: RedisTarget;
  source: 'environment' | 'local-stack';
  /** Where the state and the environment disagree (a stack running on other ports than the settings say). */
  notes?: string[];
}

/** The ports the local stack's servers are running on, read from what they left in the state directory. */
export function runningPorts(paths: StatePaths): { pg?: number; redis?: number } {
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return undefined;
    }
  };
  const out: { pg?: number; redis?: number } = {};
  // postmaster.pid: pid, data directory, start time, port, ...
  const pid = read(join(paths.dataDir, 'postmaster.pid'))?.split('\n');
  if (pid && processAlive(Number(pid[0])) && Number(pid[3]) > 0) out.pg = Number(pid[3]);
  const redisPidText = read(paths.redisPidFile);
  const port = /^port "?(\d+)"?$/m.exec(read(paths.redisConf) ?? '')?.[1];
  if (redisPidText && processAlive(Number(redisPidText.trim())) && port) out.redis = Number(port);
  return out;
}

type Env = Readonly<Record<string, string | undefined>>;

/** postgres://user@host:port/db with no password, for output. */
export function describePg(config: PgConfig): string {
  return `postgres://${config.user ?? ''}@${config.host ?? 'localhost'}:${config.port ?? 5432}/${config.database ?? ''}`;
}

export function describeRedis(t: RedisTarget): string {
  return `redis://${t.host}:${t.port}`;
}

function pgFromUrl(url: string): PgConfig {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw badInput('DATABASE_URL is not a valid URL', 'use postgres://user:password@host:port/database');
  }
  return {
    host: u.hostname,
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password) || undefined,
    database: u.pathname.slice(1) || undefined,
  };
}

function redisFromUrl(url: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw badInput('REDIS_URL is not a valid URL', 'use redis://:password@host:port');
  }
  return { host: u.hostname, port: Number(u.port || 6379), password: decodeURIComponent(u.password) || undefined };
}

export function connections(env: Env = process.env): Connections {
  if (env.DATABASE_URL) {
    return {
      pg: pgFromUrl(env.DATABASE_URL),
      redis: env.REDIS_URL ? redisFromUrl(env.REDIS_URL) : { host: '127.0.0.1', port: 6379, password: undefined },
      source: 'environment',
    };
  }
  const settings = settingsFromEnv(env);
  const paths = statePaths(env);
  const secrets = readSecrets(paths.secretsFile);
  if (!secrets) {
    throw badInput(
      `the local stack has no secrets file (${paths.secretsFile})`,
      'run `npm run up` first, or set DATABASE_URL',
    );
  }
  // The state directory knows what it started: a running server is reached on its own port, whatever the environment says now.
  const running = runningPorts(paths);
  const notes: string[] = [];
  if (running.pg !== undefined && running.pg !== settings.postgres.port) {
    notes.push(
      `PostgreSQL of ${paths.root} runs on port ${running.pg}; the settings say ${settings.postgres.port} (EDUPULSE_PG_PORT): using ${running.pg}`,
    );
  }
  if (!env.REDIS_URL && running.redis !== undefined && running.redis !== settings.redis.port) {
    notes.push(
      `Redis of ${paths.root} runs on port ${running.redis}; the settings say ${settings.redis.port} (EDUPULSE_REDIS_PORT): using ${running.redis}`,
    );
  }
  return {
    pg: {
      host: '127.0.0.1',
      port: running.pg ?? settings.postgres.port,
      user: secrets.postgres.superuser,
      password: secrets.postgres.password,
      database: settings.postgres.database,
    },
    redis: env.REDIS_URL
      ? redisFromUrl(env.REDIS_URL)
      : { host: '127.0.0.1', port: running.redis ?? settings.redis.port, password: secrets.redis.password },
    source: 'local-stack',
    ...(notes.length ? { notes } : {}),
  };
}
