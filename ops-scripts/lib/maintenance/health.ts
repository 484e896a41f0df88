// Health checks for Postgres (as the monitoring login), Redis and the backup
// repository, each graded ok / warn / critical against thresholds from
// settings. Rendered as a table, JSON or Prometheus text.
import type { HealthThresholds } from '../../../infra/settings.ts';
import type { BackupKind, BackupRecord, LocalRepository } from '../backup/repository.ts';
import type { Sample } from '../metrics.ts';
import { lastPassingDrill } from '../drill/records.ts';
import type { RedisTarget } from '../connection.ts';
import { withClient, type PgConfig } from '../db.ts';
import { describeError } from '../errors.ts';
import { redisClient } from '../redis.ts';
import { SEED_TABLES } from '../seed/load.ts';
import { poolerPid, poolerPools } from '../pooler.ts';
import type { StackContext } from '../stack-context.ts';
import { partitions as declaredPartitions } from '../../../views/partitions.ts';
import { monthsBetween, parseBound } from '../../../views/engine/partitions.ts';

export type Level = 'ok' | 'warn' | 'critical';
export interface Check {
  component: 'postgres' | 'redis' | 'backups';
  name: string;
  level: Level;
  value: number | null;
  detail: string;
}

/** PgBouncer's pools (local stack, EDUPULSE_POOLER=on): clients waiting for a server connection. */
export async function poolerChecks(ctx: StackContext, th: HealthThresholds): Promise<Check[]> {
  const name = 'pooler_waiting_clients';
  if (!poolerPid(ctx))
    return [
      {
        component: 'postgres',
        name,
        level: 'critical',
        value: null,
        detail: `PgBouncer is not running on port ${ctx.settings.pooler.port}`,
      },
    ];
  const pools = await poolerPools(ctx);
  const waiting = pools.reduce((n, p) => n + p.clientsWaiting, 0);
  const longest = Math.max(0, ...pools.map((p) => p.maxWaitSeconds));
  return [
    {
      component: 'postgres',
      name,
      level: grade(waiting, th.poolerWaitingClients),
      value: waiting,
      detail: `${waiting} clients waiting for a server connection (longest ${longest} s) across ${pools.length} pools`,
    },
  ];
}

export const grade = (value: number, [warn, critical]: [number, number]): Level =>
  value >= critical ? 'critical' : value >= warn ? 'warn' : 'ok';

const ms = (t0: number) => performance.now() - t0;

export async function postgresChecks(
  monitor: PgConfig,
  reporting: PgConfig | undefined,
  th: HealthThresholds,
  /** The standbys the settings declare (standby1..N), each expected to stream from this server. */
  standbys: string[] = [],
): Promise<{ checks: Check[]; bornAt?: number }> {
  const checks: Check[] = [];
  const add = (name: string, level: Level, value: number | null, detail: string) =>
    checks.push({ component: 'postgres', name, level, value, detail });
  let bornAt: number | undefined;
  try {
    await withClient(
      { ...monitor, connectionTimeoutMillis: 5000, application_name: 'edupulse-db health' },
      async (c) => {
        const t0 = performance.now();
        await c.query('SELECT 1');
        const latency = ms(t0);
        add('select_1_latency_ms', grade(latency, th.selectLatencyMs), latency, `SELECT 1 in ${latency.toFixed(1)} ms`);
        const i = (
          await c.query(`SELECT current_setting('server_version') AS version,
          extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime,
          (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS used,
          current_setting('max_connections')::int AS max,
          coalesce((SELECT extract(epoch FROM max(now() - xact_start)) FROM pg_stat_activity
                     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND xact_start IS NOT NULL), 0)::float8 AS longest,
          (SELECT count(*) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0)::int AS blocked,
          (SELECT max(age(datfrozenxid)) FROM pg_database)::float8 AS xid_age,
          current_setting('autovacuum_freeze_max_age')::float8 AS freeze_max,
          pg_database_size(current_database())::float8 AS db_size,
          ((SELECT system_identifier FROM pg_control_system()) >> 32)::float8 AS born`)
        ).rows[0];
        bornAt = i.born * 1000;
        add('version', 'ok', null, i.version);
        add('uptime_seconds', 'ok', i.uptime, `up ${(i.uptime / 3600).toFixed(1)} h`);
        const pct = (100 * i.used) / i.max;
        add('connections_used_pct', grade(pct, th.connectionsUsedPct), pct, `${i.used} of max_connections ${i.max}`);
        add(
          'longest_transaction_seconds',
          grade(i.longest, th.longestTransactionSeconds),
          i.longest,
          `${i.longest.toFixed(0)} s`,
        );
        add(
          'blocked_queries',
          grade(i.blocked, th.blockedQueries),
          i.blocked,
          `${i.blocked} waiting on another session's lock`,
        );
        const xidPct = (100 * i.xid_age) / i.freeze_max;
        add(
          'xid_age_pct_of_freeze_max',
          grade(xidPct, th.xidAgePct),
          xidPct,
          `oldest database's datfrozenxid age ${i.xid_age} (${xidPct.toFixed(1)}% of autovacuum_freeze_max_age)`,
        );
        add('database_size_bytes', 'ok', i.db_size, `${(i.db_size / 1048576).toFixed(1)} MB`);
        const a = (
          await c.query(`SELECT failed_count, last_failed_wal, last_failed_time, last_archived_time,
          (last_failed_time IS NOT NULL AND (last_archived_time IS NULL OR last_failed_time > last_archived_time)) AS failing
          FROM pg_stat_archiver`)
        ).rows[0];
        const ready = Number(
          (await c.query(`SELECT count(*) AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'`)).rows[0].n,
        );
        add(
          'archive_ready_segments',
          grade(ready, th.archiveReadySegments),
          ready,
          `${ready} WAL segment(s) waiting to be archived`,
        );
        add(
          'archiver_failing',
          a.failing ? 'critical' : 'ok',
          a.failing ? 1 : 0,
          a.failing
            ? `archiving of ${a.last_failed_wal} failed at ${a.last_failed_time.toISOString()}, no success since`
            : `${a.failed_count} failures ever, none since the last success`,
        );
        if (standbys.length) {
          const repl = (
            await c.query(
              `SELECT application_name AS name, state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS lag
               FROM pg_stat_replication`,
            )
          ).rows as Array<{ name: string; state: string; lag: number | null }>;
          for (const name of standbys) {
            const r = repl.find((x) => x.name === name);
            const lag = Number(r?.lag ?? 0);
            add(
              `replication_lag_bytes_${name}`,
              r?.state === 'streaming' ? grade(lag, th.replicationLagBytes) : 'critical',
              r ? lag : null,
              r?.state === 'streaming'
                ? `${name} replays ${lag} bytes behind the primary`
                : `${name} is not streaming from the primary${r ? ` (${r.state})` : ''}`,
            );
          }
        }
        // A partitioned table's rows are its partitions' (it has no statistics of its own).
        const rows = (
          await c.query(
            `SELECT c.relname, coalesce((SELECT sum(s.n_live_tup) FROM pg_stat_user_tables s
                                           WHERE s.relid = c.oid OR s.relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = c.oid)), 0)::float8 AS n
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'public' AND c.relname = ANY ($1) ORDER BY 1`,
            [SEED_TABLES],
          )
        ).rows;
        for (const r of rows)
          add(
            `rows_${r.relname}`,
            'ok',
            r.n,
            `about ${r.n} rows (statistics estimate; the monitoring login reads no table data)`,
          );
        // Declared partitions (views/partitions.ts): months made ahead, and rows no month holds (in the default one).
        const today = (await c.query<{ d: string }>("SELECT to_char(current_date, 'YYYY-MM-DD') AS d")).rows[0]!.d;
        for (const d of declaredPartitions) {
          const { rows: parts } = await c.query<{ bound: string; live: number }>(
            `SELECT pg_get_expr(p.relpartbound, p.oid) AS bound, coalesce(s.n_live_tup, 0)::float8 AS live
               FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhrelid LEFT JOIN pg_stat_user_tables s ON s.relid = p.oid
              WHERE h.inhparent = (SELECT t.oid FROM pg_class t JOIN pg_namespace tn ON tn.oid = t.relnamespace
                                    WHERE tn.nspname = $1 AND t.relname = $2)`,
            // By name in the catalog: to_regclass would need USAGE on the schema, which the monitoring login lacks.
            [d.schema, d.table],
          );
          if (!parts.length) continue;
          // The last day a month partition covers up to (exclusive), against today's month.
          const last = parts
            .map((p) => parseBound(p.bound))
            .flatMap((b) => (b && b !== 'default' && b.to ? [b.to] : []))
            .sort()
            .at(-1);
          const ahead = last ? Math.max(-1, monthsBetween(today, last) - 1) : -1;
          add(
            `partition_months_ahead_${d.table}`,
            ahead >= 1 ? 'ok' : 'warn',
            ahead,
            ahead >= 1
              ? `${d.schema}.${d.table} has partitions to ${last} (${ahead} month(s) after this one)`
              : `${d.schema}.${d.table} has no partition for next month${ahead < 0 ? ' nor this one' : ''}: its rows go to the default partition; run apply (the nightly vacuum makes them)`,
          );
          const waiting = parts.filter((p) => p.bound === 'DEFAULT').reduce((n, p) => n + p.live, 0);
          add(
            `partition_default_rows_${d.table}`,
            waiting > 0 ? 'warn' : 'ok',
            waiting,
            waiting > 0
              ? `about ${waiting} rows of ${d.schema}.${d.table} wait in its default partition (no month held them); apply moves them into their month`
              : `no row of ${d.schema}.${d.table} waits in its default partition`,
          );
        }
      },
    );
  } catch (err) {
    add('reachable', 'critical', 0, describeError(err));
    return { checks };
  }
  if (reporting) {
    const queries: Array<[name: string, sql: string, limits: [number, number], what: string]> = [
      [
        'latest_predictions_query_ms',
        "SELECT * FROM student_risk_summary WHERE risk_category IN ('high', 'critical')",
        th.latestPredictionsMs,
        'high/critical latest predictions',
      ],
      [
        'attendance_concerns_query_ms',
        'SELECT * FROM student_attendance_concerns',
        th.attendanceConcernsMs,
        'students with more than five absences/tardies in 30 days',
      ],
    ];
    try {
      await withClient({ ...reporting, connectionTimeoutMillis: 5000 }, async (c) => {
        for (const [name, sql, limits, what] of queries) {
          try {
            const t0 = performance.now();
            await c.query(sql);
            const latency = ms(t0);
            add(name, grade(latency, limits), latency, `${what} in ${latency.toFixed(1)} ms`);
          } catch (err) {
            add(name, 'critical', null, describeError(err));
          }
        }
      });
    } catch (err) {
      for (const [name] of queries) add(name, 'critical', null, describeError(err));
    }
  }
  return { checks, bornAt };
}

export async function redisChecks(target: RedisTarget, prefix: string, th: HealthThresholds): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (name: string, level: Level, value: number | null, detail: string) =>
    checks.push({ component: 'redis', name, level, value, detail });
  const client = await redisClient({ host: target.host, port: target.port, password: target.password ?? '' });
  client.on('error', () => {});
  try {
    await client.connect();
    const t0 = performance.now();
    await client.ping();
    const latency = ms(t0);
    add('ping_latency_ms', grade(latency, th.redisPingMs), latency, `PING (authenticated) in ${latency.toFixed(1)} ms`);
    const info = await client.info();
    const field = (k: string) => new RegExp(`^${k}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '';
    const used = Number(field('used_memory')),
      max = Number(field('maxmemory'));
    const pct = max > 0 ? (100 * used) / max : 0;
    add(
      'memory_used_pct',
      max > 0 ? grade(pct, th.redisMemoryUsedPct) : 'ok',
      pct,
      max > 0 ? `${used} of maxmemory ${max} bytes` : `${used} bytes, no maxmemory`,
    );
    add(
      'evicted_keys',
      'ok',
      Number(field('evicted_keys')),
      `${field('evicted_keys')} keys evicted since start (a cache under pressure evicts)`,
    );
    let count = 0,
      cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      count += keys.length;
    } while (cursor !== '0');
    add('prediction_keys', 'ok', count, `${count} ${prefix}* keys`);
    const rdb = field('rdb_last_bgsave_status'),
      aof = field('aof_last_write_status');
    const persistenceOk = rdb === 'ok' && (field('aof_enabled') !== '1' || aof === 'ok');
    add(
      'persistence_ok',
      persistenceOk ? 'ok' : 'critical',
      persistenceOk ? 1 : 0,
      `rdb_last_bgsave_status ${rdb}, aof_enabled ${field('aof_enabled')}, aof_last_write_status ${aof}`,
    );
  } catch (err) {
    add('reachable', 'critical', 0, `PING with auth failed: ${describeError(err)}`);
  } finally {
    client.disconnect();
  }
  return checks;
}

/** Pages the newest physical backup found damaged (their checksum failed as it read them). */
function pageChecksums(newest: BackupRecord | undefined): Check {
  const failures = newest?.checksumFailures ?? [];
  return {
    component: 'backups',
    name: 'page_checksum_failures',
    level: failures.length ? 'critical' : 'ok',
    value: failures.length,
    detail: failures.length
      ? `backup ${newest!.id} read ${failures.length} damaged page(s): ${failures.map((f) => `${f.relation ?? f.file} block ${f.block}`).join(', ')}`
      : 'the newest physical backup read no damaged page',
  };
}

/**
 * Ages of the newest physical backup, logical dump and passing drill. A new
 * cluster has until the warn threshold after its initdb before a missing one counts.
 */
export function repositoryChecks(
  repo: LocalRepository,
  th: HealthThresholds,
  bornAt: number | undefined,
  now = Date.now(),
): Check[] {
  const newest = (kind: BackupKind) => {
    const r = repo.list(kind).pop();
    return r ? Date.parse(r.finishedAt) : undefined;
  };
  const check = (
    name: string,
    at: number | undefined,
    what: string,
    unitSeconds: number,
    limits: [number, number],
  ): Check => {
    const since = at ?? bornAt ?? 0;
    const age = (now - since) / 1000 / unitSeconds;
    return {
      component: 'backups',
      name,
      level: grade(age, limits),
      value: at === undefined ? null : age,
      detail:
        at === undefined
          ? `no ${what} yet (cluster created ${bornAt ? new Date(bornAt).toISOString() : 'at an unknown time'})`
          : `last ${what} ${new Date(at).toISOString()}`,
    };
  };
  return [
    check('physical_backup_age_hours', newest('physical'), 'physical backup', 3600, th.physicalBackupAgeHours),
    check('logical_backup_age_hours', newest('logical'), 'logical dump', 3600, th.logicalBackupAgeHours),
    check('drill_age_days', lastPassingDrill(repo), 'passing recovery drill', 86400, th.drillAgeDays),
    pageChecksums(repo.list('physical').pop()),
  ];
}

const LEVEL_VALUE: Record<Level, number> = { ok: 0, warn: 1, critical: 2 };

/** Each check's level, and its value where it has one, as metric samples. */
export function healthSamples(checks: Check[]): Sample[] {
  return checks.flatMap((c): Sample[] => {
    const labels = { component: c.component, check: c.name };
    const level: Sample = { name: 'edupulse_health_check', labels, value: LEVEL_VALUE[c.level] };
    return c.value !== null && Number.isFinite(c.value)
      ? [level, { name: 'edupulse_health_value', labels, value: c.value }]
      : [level];
  });
}
