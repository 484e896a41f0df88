// The vacuum job: check the xmin horizon, plan, then run one table at a time
// with SKIP_LOCKED, lock_timeout and statement_timeout, within a time budget.
// VACUUM FULL only when asked for one named table, and refused (exit 3) for a
// table above the size limit unless forced. One run at a time (advisory lock).
import { SERVER_LOCKS } from '../locks.ts';
import { quoteQualified, withAdvisoryLock, withClient, type PgClient, type PgConfig } from '../db.ts';
import { badInput, describeError, refused } from '../errors.ts';
import {
  describeHolder,
  readHorizonHolders,
  readTableStats,
  readVacuumSettings,
  type HorizonHolder,
} from './vacuum-stats.ts';
import { planVacuum, type PlannedTable, type VacuumAction } from './vacuum-plan.ts';
import { advanceAttendanceWindow, type WindowResult } from './advance-window.ts';

export interface VacuumOptions {
  dryRun?: boolean;
  maxDurationSeconds?: number;
  lockTimeout?: string;
  statementTimeout?: string;
  costDelayMs?: number;
  full?: string;
  force?: boolean;
  fullMaxBytes: number;
}

export interface TableResult {
  table: string;
  action: VacuumAction | 'vacuum-full';
  reason: string;
  status: 'done' | 'skipped' | 'failed' | 'planned' | 'none';
  seconds?: number;
  deadBefore: number;
  deadAfter?: number;
  detail?: string;
}

export interface VacuumReport {
  horizon: { blocked: boolean; holders: string[] };
  /** The attendance window moved to today before the plan (its counts' dead rows are then in the plan). */
  attendanceWindow: WindowResult;
  tables: TableResult[];
  budgetSpent: boolean;
  seconds: number;
}

function statement(t: PlannedTable): string {
  const rel = quoteQualified(t.schema, t.name);
  switch (t.action) {
    case 'vacuum-freeze':
      return `VACUUM (FREEZE, SKIP_LOCKED${t.kind === 'toast' ? '' : ', ANALYZE'}) ${rel}`;
    case 'vacuum-analyze':
      return `VACUUM (ANALYZE, SKIP_LOCKED) ${rel}`;
    case 'vacuum':
      return `VACUUM (SKIP_LOCKED) ${rel}`;
    case 'analyze':
      return `ANALYZE (SKIP_LOCKED) ${rel}`;
    case 'none':
      return '';
  }
}

const ORDER: Record<VacuumAction, number> = { 'vacuum-freeze': 0, 'vacuum-analyze': 1, vacuum: 1, analyze: 2, none: 3 };

async function deadTuples(c: PgClient, schema: string, name: string): Promise<number> {
  await c.query('SELECT pg_stat_clear_snapshot()');
  const { rows } = await c.query(
    'SELECT coalesce(n_dead_tup, 0)::float8 AS d FROM pg_stat_all_tables WHERE schemaname = $1 AND relname = $2',
    [schema, name],
  );
  return rows[0]?.d ?? 0;
}

async function vacuumFull(c: PgClient, table: string, opts: VacuumOptions): Promise<TableResult> {
  const { rows } = await c.query<{ schema: string; name: string; size: number }>(
    `SELECT n.nspname AS schema, c.relname AS name, pg_total_relation_size(c.oid)::float8 AS size FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'm')`,
    [table],
  );
  const t = rows[0];
  if (!t) throw badInput(`--full ${table}: no such table`, 'name one table, schema-qualified if not in public');
  if (t.size > opts.fullMaxBytes && !opts.force) {
    throw refused(
      `VACUUM FULL of ${t.schema}.${t.name} (${(t.size / 1048576).toFixed(0)} MB) would hold an ACCESS EXCLUSIVE lock while it rewrites the table; it is above the limit (${(opts.fullMaxBytes / 1048576).toFixed(0)} MB)`,
      'add --force if downtime for that table is acceptable, or raise EDUPULSE_VACUUM_FULL_MAX_MB',
    );
  }
  const before = await deadTuples(c, t.schema, t.name);
  const r: TableResult = {
    table: `${t.schema}.${t.name}`,
    action: 'vacuum-full',
    reason: 'asked for with --full',
    status: 'planned',
    deadBefore: before,
  };
  if (opts.dryRun) return r;
  const s0 = performance.now();
  await c.query(`VACUUM (FULL, ANALYZE) ${quoteQualified(t.schema, t.name)}`);
  return {
    ...r,
    status: 'done',
    seconds: (performance.now() - s0) / 1000,
    deadAfter: await deadTuples(c, t.schema, t.name),
  };
}

export async function runVacuum(config: PgConfig, opts: VacuumOptions): Promise<VacuumReport> {
  const t0 = performance.now();
  return withClient({ ...config, application_name: 'edupulse-db vacuum' }, async (c) => {
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    return withAdvisoryLock(c, SERVER_LOCKS.vacuum, 'another vacuum run', async () => {
      await c.query(`SET lock_timeout = '${(opts.lockTimeout ?? '5s').replace(/'/g, '')}'`);
      await c.query(`SET statement_timeout = '${(opts.statementTimeout ?? '1h').replace(/'/g, '')}'`);
      if (opts.costDelayMs !== undefined) await c.query(`SET vacuum_cost_delay = ${Number(opts.costDelayMs)}`);
      const holders: HorizonHolder[] = await readHorizonHolders(c);
      const horizon = { blocked: holders.length > 0, holders: holders.map(describeHolder) };
      if (opts.full)
        return {
          horizon,
          attendanceWindow: { status: 'skipped', detail: 'VACUUM FULL run' },
          tables: [await vacuumFull(c, opts.full, opts)],
          budgetSpent: false,
          seconds: (performance.now() - t0) / 1000,
        };
      const attendanceWindow = await advanceAttendanceWindow(c, Boolean(opts.dryRun));
      const planned = planVacuum(await readTableStats(c), await readVacuumSettings(c)).sort(
        (a, b) => ORDER[a.action] - ORDER[b.action] || b.nDeadTup - a.nDeadTup,
      );
      const tables: TableResult[] = [];
      let budgetSpent = false;
      for (const t of planned) {
        const base: TableResult = {
          table: `${t.schema}.${t.name}`,
          action: t.action,
          reason: t.reason,
          status: 'none',
          deadBefore: t.nDeadTup,
        };
        if (t.action === 'none') {
          tables.push(base);
          continue;
        }
        if (opts.dryRun) {
          tables.push({ ...base, status: 'planned' });
          continue;
        }
        if (opts.maxDurationSeconds !== undefined && (performance.now() - t0) / 1000 >= opts.maxDurationSeconds) {
          budgetSpent = true;
          tables.push({ ...base, status: 'skipped', detail: 'time budget (--max-duration) spent' });
          continue;
        }
        notices.length = 0;
        const s0 = performance.now();
        try {
          await c.query(statement(t));
          const skipped = notices.find((m) => /skipping/i.test(m));
          tables.push(
            skipped
              ? { ...base, status: 'skipped', detail: `${skipped} (another session holds a lock; not waited on)` }
              : {
                  ...base,
                  status: 'done',
                  seconds: (performance.now() - s0) / 1000,
                  deadAfter: await deadTuples(c, t.schema, t.name),
                },
          );
        } catch (err) {
          tables.push({
            ...base,
            status: 'failed',
            seconds: (performance.now() - s0) / 1000,
            detail: describeError(err),
          });
        }
      }
      return { horizon, attendanceWindow, tables, budgetSpent, seconds: (performance.now() - t0) / 1000 };
    });
  });
}
