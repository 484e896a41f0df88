// What is running, read from the live servers: state, version, where to
// connect (without the password), and the key settings as the server sees them.
import { join } from 'node:path';
import { clusterRunning } from './cluster.ts';
import { describePg, describeRedis, type Connections } from './connection.ts';
import { withClient } from './db.ts';
import { describeError } from './errors.ts';
import { redisClient } from './redis.ts';
import { keptDrills, type ScratchCluster } from './restore/scratch-clusters.ts';
import { clusterSpec, primaryPort, type StackContext } from './stack-context.ts';
import { poolerPid, poolerPools, type PoolStatus } from './pooler.ts';
import { nodeName } from './topology.ts';
import { standbyStatus, type StandbyStatus } from './standby.ts';

export const KEY_SETTINGS = [
  'wal_level',
  'archive_mode',
  'archive_command',
  'archive_timeout',
  'wal_compression',
  'log_min_duration_statement',
  'log_lock_waits',
  'shared_preload_libraries',
  'data_checksums',
  'password_encryption',
  'port',
] as const;

export type ServerState = 'running' | 'stopped' | 'unreachable';

export interface ArchiverStatus {
  archivedCount: number;
  failedCount: number;
  lastArchivedWal: string | null;
  lastArchivedTime: string | null;
  lastFailedWal: string | null;
  lastFailedTime: string | null;
  /** Segments waiting to be archived (.ready files). */
  waiting: number;
}

export interface PostgresStatus {
  state: ServerState;
  url: string;
  version?: string;
  settings?: Record<string, string | null>;
  archiver?: ArchiverStatus;
  /** Hot standbys (EDUPULSE_PG_STANDBYS): state, replay lag, what each slot holds back. */
  standbys?: StandbyStatus[];
  /** Which node (pg0..pgN) is the primary, when the stack has standbys or has failed over. */
  primary?: string;
  /** PgBouncer (EDUPULSE_POOLER=on): its port and pools. */
  pooler?: { state: 'running' | 'stopped'; port: number; pools?: PoolStatus[]; error?: string };
  error?: string;
}

export interface RedisStatus {
  state: ServerState;
  url: string;
  version?: string;
  settings?: Record<string, string>;
  error?: string;
}

export interface StackStatus {
  source: Connections['source'];
  postgres: PostgresStatus;
  redis: RedisStatus;
  /** Drill clusters kept with --keep (stop them with `stop <dir> --remove` or `drill --cleanup`). */
  keptDrills: ScratchCluster[];
  /** Where the state and the environment disagree. */
  notes: string[];
}

async function postgresStatus(conn: Connections, ctx: StackContext | undefined): Promise<PostgresStatus> {
  const url = describePg(conn.pg);
  if (ctx && !(await clusterRunning(clusterSpec(ctx)))) return { state: 'stopped', url };
  try {
    return await withClient({ ...conn.pg, connectionTimeoutMillis: 5000 }, async (c) => {
      const { rows } = await c.query<{ name: string; value: string | null }>(
        'SELECT n AS name, current_setting(n, true) AS value FROM unnest($1::text[]) AS n',
        [KEY_SETTINGS],
      );
      const version = (await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
      const a = (
        await c.query(`SELECT archived_count, failed_count, last_archived_wal, last_archived_time, last_failed_wal, last_failed_time,
          (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready')::int AS waiting FROM pg_stat_archiver`)
      ).rows[0];
      const archiver: ArchiverStatus = {
        archivedCount: Number(a.archived_count),
        failedCount: Number(a.failed_count),
        lastArchivedWal: a.last_archived_wal,
        lastArchivedTime: a.last_archived_time?.toISOString() ?? null,
        lastFailedWal: a.last_failed_wal,
        lastFailedTime: a.last_failed_time?.toISOString() ?? null,
        waiting: a.waiting,
      };
      const standbys = ctx ? await standbyStatus(ctx, conn.pg) : [];
      const pooler = ctx?.settings.pooler.enabled ? await poolerState(ctx) : undefined;
      const primary =
        ctx && (standbys.length || ctx.paths.primaryNode)
          ? `${nodeName(ctx.paths.primaryNode)} on port ${primaryPort(ctx)}`
          : undefined;
      return {
        state: 'running' as const,
        url,
        version,
        settings: Object.fromEntries(rows.map((r) => [r.name, r.value])),
        archiver,
        ...(standbys.length ? { standbys } : {}),
        ...(primary ? { primary } : {}),
        ...(pooler ? { pooler } : {}),
      };
    });
  } catch (err) {
    return { state: 'unreachable', url, error: describeError(err) };
  }
}

async function poolerState(ctx: StackContext): Promise<NonNullable<PostgresStatus['pooler']>> {
  const port = ctx.settings.pooler.port;
  if (!poolerPid(ctx)) return { state: 'stopped', port };
  try {
    return { state: 'running', port, pools: await poolerPools(ctx) };
  } catch (err) {
    return { state: 'running', port, error: describeError(err) };
  }
}

async function redisStatus(conn: Connections): Promise<RedisStatus> {
  const url = describeRedis(conn.redis);
  const client = await redisClient({
    host: conn.redis.host,
    port: conn.redis.port,
    password: conn.redis.password ?? '',
  });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch {
    client.disconnect();
    return { state: 'stopped', url };
  }
  try {
    const info = await client.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1];
    const settings: Record<string, string> = {};
    for (const name of ['maxmemory', 'maxmemory-policy', 'appendonly', 'save', 'port']) {
      const [, value] = (await client.config('GET', name)) as [string, string];
      settings[name] = value;
    }
    return { state: 'running', url, version, settings };
  } catch (err) {
    return { state: 'unreachable', url, error: describeError(err) };
  } finally {
    client.disconnect();
  }
}

export async function stackStatus(conn: Connections, ctx?: StackContext): Promise<StackStatus> {
  const [postgres, redis, kept] = await Promise.all([
    postgresStatus(conn, ctx),
    redisStatus(conn),
    ctx ? keptDrills(join(ctx.paths.root, 'drills')) : [],
  ]);
  return { source: conn.source, postgres, redis, keptDrills: kept, notes: conn.notes ?? [] };
}

export function formatStatus(s: StackStatus): string {
  const lines = [
    `postgres  ${s.postgres.state}${s.postgres.version ? `  ${s.postgres.version}` : ''}  ${s.postgres.url}`,
  ];
  if (s.postgres.error) lines.push(`  error: ${s.postgres.error}`);
  for (const [k, v] of Object.entries(s.postgres.settings ?? {}))
    if (v !== null && v !== '') lines.push(`  ${k.padEnd(34)} ${v}`);
  const a = s.postgres.archiver;
  if (a) {
    lines.push(
      `  ${'archiver'.padEnd(34)} ${a.archivedCount} archived (last ${a.lastArchivedWal ?? '-'} at ${a.lastArchivedTime ?? '-'}), ` +
        `${a.failedCount} failed${a.lastFailedWal ? ` (last ${a.lastFailedWal} at ${a.lastFailedTime})` : ''}, ${a.waiting} waiting`,
    );
  }
  if (s.postgres.primary) lines.push(`  ${'primary'.padEnd(34)} ${s.postgres.primary}`);
  for (const sb of s.postgres.standbys ?? []) {
    lines.push(
      `  ${`standby ${sb.name}`.padEnd(34)} ${sb.running ? 'running' : 'stopped'} on port ${sb.port}` +
        (sb.state
          ? `, ${sb.state} (${sb.syncState}), replay lag ${sb.replayLagBytes} bytes${sb.replayLagSeconds != null ? ` / ${sb.replayLagSeconds.toFixed(3)} s` : ''}`
          : ', not connected') +
        (sb.slotRetainedBytes !== undefined ? `, slot holds ${sb.slotRetainedBytes} bytes of WAL` : ''),
    );
  }
  const pb = s.postgres.pooler;
  if (pb) {
    lines.push(`pgbouncer ${pb.state}  127.0.0.1:${pb.port}${pb.error ? `  error: ${pb.error}` : ''}`);
    for (const p of pb.pools ?? [])
      lines.push(
        `  ${`pool ${p.database}/${p.user}`.padEnd(34)} clients ${p.clientsActive} active, ${p.clientsWaiting} waiting (longest ${p.maxWaitSeconds} s); servers ${p.serversActive} active, ${p.serversIdle} idle`,
      );
  }
  lines.push(`redis     ${s.redis.state}${s.redis.version ? `  ${s.redis.version}` : ''}  ${s.redis.url}`);
  if (s.redis.error) lines.push(`  error: ${s.redis.error}`);
  for (const [k, v] of Object.entries(s.redis.settings ?? {})) lines.push(`  ${k.padEnd(34)} ${v}`);
  for (const n of s.notes) lines.push(`note: ${n}`);
  for (const k of s.keptDrills) {
    lines.push(
      `kept drill  ${k.running ? `running on 127.0.0.1:${k.port}` : 'stopped'}  ${k.dataDir}  (edupulse-db stop ${k.dataDir} --remove)`,
    );
  }
  return lines.join('\n');
}
