// Redis of the local stack: a config file (0600, holding the password, so it
// never appears on a command line), redis-server daemonized as the service
// user, readiness by an authenticated PING.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { redisDirectives, type RedisSettings } from '../../infra/settings.ts';
import { failed } from './errors.ts';
import { writeFileAtomic } from './files.ts';
import type { Logger } from './logger.ts';
import { processAlive, processCommand } from './process.ts';
import { run, tail, type OsUser } from './run.ts';

export interface RedisSpec {
  server: string;
  settings: RedisSettings;
  password: string;
  dir: string;
  confFile: string;
  pidFile: string;
  logFile: string;
  as?: OsUser;
  logger?: Logger;
}

export function renderRedisConf(spec: RedisSpec): string {
  const quote = (v: string) => `"${v.replace(/(["\\])/g, '\\$1')}"`;
  const lines: Array<[string, string]> = [
    ['bind', '127.0.0.1'],
    ['protected-mode', 'yes'],
    ['requirepass', spec.password],
    ['daemonize', 'yes'],
    ['pidfile', spec.pidFile],
    ['logfile', spec.logFile],
    ['dir', spec.dir],
    ...redisDirectives(spec.settings),
  ];
  return (
    '# Written by edupulse-db from infra/settings.ts; changes here are overwritten.\n' +
    lines.map(([k, v]) => `${k} ${quote(v)}`).join('\n') +
    '\n'
  );
}

/** Directives redis-server takes at run time with CONFIG SET: a change to only these needs no restart. */
export const RUNTIME_DIRECTIVES = new Set(['maxmemory', 'maxmemory-policy', 'save', 'appendonly', 'appendfsync']);

function directives(conf: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of conf.split('\n')) {
    const m = /^([\w-]+) "((?:[^"\\]|\\.)*)"$/.exec(line);
    if (m) out.set(m[1]!, m[2]!.replace(/\\(.)/g, '$1'));
  }
  return out;
}

/**
 * Writes the config file (which also persists the settings for the next
 * start); returns whether it changed and, when only run-time directives did,
 * those directives with their new values.
 */
export function configureRedis(spec: RedisSpec): { changed: boolean; runtimeOnly?: Array<[string, string]> } {
  const content = renderRedisConf(spec);
  const before = existsSync(spec.confFile) ? readFileSync(spec.confFile, 'utf8') : undefined;
  if (before === content) return { changed: false };
  writeFileAtomic(spec.confFile, content, { mode: 0o600, owner: spec.as });
  if (before === undefined) return { changed: true };
  const [old, now] = [directives(before), directives(content)];
  const keys = new Set([...old.keys(), ...now.keys()]);
  const diff = [...keys].filter((k) => old.get(k) !== now.get(k));
  return diff.every((k) => RUNTIME_DIRECTIVES.has(k) && now.has(k))
    ? { changed: true, runtimeOnly: diff.map((k) => [k, now.get(k)!]) }
    : { changed: true };
}

/** Applies run-time directives to a running redis-server (CONFIG SET), authenticated with its password. */
export async function applyRuntimeDirectives(spec: RedisSpec, pairs: Array<[string, string]>): Promise<void> {
  const client = await redisClient({ port: spec.settings.port, password: spec.password });
  client.on('error', () => {});
  try {
    await client.connect();
    for (const [k, v] of pairs) await client.config('SET', k, v);
  } finally {
    client.disconnect();
  }
}

/** The pid of our redis-server if it is running (a pid file naming a live redis-server). */
export function redisPid(spec: Pick<RedisSpec, 'pidFile'>): number | undefined {
  if (!existsSync(spec.pidFile)) return undefined;
  const pid = Number(readFileSync(spec.pidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return processCommand(pid)?.includes('redis-server') ? pid : undefined;
}

/** ioredis is loaded on first use: a job's --help, or one that never talks to Redis, does not pay for it. */
export async function redisClient(opts: { port: number; password: string; host?: string }): Promise<Redis> {
  const { Redis } = await import('ioredis');
  return new Redis({
    host: opts.host ?? '127.0.0.1',
    port: opts.port,
    password: opts.password,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
}

export async function redisPing(opts: { port: number; password: string; host?: string }): Promise<boolean> {
  const client = await redisClient(opts);
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startRedis(spec: RedisSpec, timeoutMs = 15_000): Promise<void> {
  // A pid file left by a killed server would only confuse the check below.
  if (!redisPid(spec)) rmSync(spec.pidFile, { force: true });
  spec.logger?.log({ event: 'redis.start', port: spec.settings.port });
  await run(spec.server, [spec.confFile], { as: spec.as, logger: spec.logger });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await redisPing({ port: spec.settings.port, password: spec.password })) return;
    await sleep(100);
  }
  const log = existsSync(spec.logFile) ? tail(readFileSync(spec.logFile, 'utf8')) : '';
  throw failed(
    `redis-server on port ${spec.settings.port} did not answer within ${timeoutMs / 1000}s\n${log}`,
    `see ${spec.logFile}`,
  );
}

/** SIGTERM (Redis saves per its persistence setting) and wait until it is gone. */
export async function stopRedis(spec: RedisSpec, timeoutMs = 30_000): Promise<boolean> {
  const pid = redisPid(spec);
  if (!pid) return false;
  spec.logger?.log({ event: 'redis.stop', port: spec.settings.port });
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid)) {
    if (Date.now() > deadline) throw failed(`redis-server (pid ${pid}) did not stop within ${timeoutMs / 1000}s`);
    await sleep(50);
  }
  return true;
}
