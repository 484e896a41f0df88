// Connection details for every job, from one place: DATABASE_URL / REDIS_URL
// when set, the local stack's state otherwise. Descriptions never carry a password.
import type { PgConfig } from './db.ts';
import { badInput } from './errors.ts';
import { readSecrets } from './secrets.ts';
import { statePaths } from './state.ts';
import { settingsFromEnv } from './stack-context.ts';

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
  try { u = new URL(url); } catch { throw badInput('DATABASE_URL is not a valid URL', 'use postgres://user:password@host:port/database'); }
  return {
    host: u.hostname, port: Number(u.port || 5432), user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password) || undefined, database: u.pathname.slice(1) || undefined,
  };
}

function redisFromUrl(url: string): RedisTarget {
  let u: URL;
  try { u = new URL(url); } catch { throw badInput('REDIS_URL is not a valid URL', 'use redis://:password@host:port'); }
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
    throw badInput(`the local stack has no secrets file (${paths.secretsFile})`, 'run `npm run up` first, or set DATABASE_URL');
  }
  return {
    pg: {
      host: '127.0.0.1', port: settings.postgres.port, user: secrets.postgres.superuser,
      password: secrets.postgres.password, database: settings.postgres.database,
    },
    redis: env.REDIS_URL ? redisFromUrl(env.REDIS_URL)
      : { host: '127.0.0.1', port: settings.redis.port, password: secrets.redis.password },
    source: 'local-stack',
  };
}
