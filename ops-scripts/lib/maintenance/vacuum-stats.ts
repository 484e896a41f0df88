// Reads what the vacuum planner needs from the live server: table statistics,
// the autovacuum settings, and who holds the xmin horizon back.
import type { PgClient } from '../db.ts';
import type { TableStats, VacuumSettings } from './vacuum-plan.ts';

export async function readVacuumSettings(c: PgClient): Promise<VacuumSettings> {
  const { rows } = await c.query<{
    name: string;
    setting: string;
  }>(`SELECT name, setting FROM pg_settings WHERE name IN (
    'autovacuum_vacuum_threshold', 'autovacuum_vacuum_scale_factor', 'autovacuum_vacuum_insert_threshold',
    'autovacuum_vacuum_insert_scale_factor', 'autovacuum_analyze_threshold', 'autovacuum_analyze_scale_factor',
    'autovacuum_freeze_max_age', 'autovacuum_multixact_freeze_max_age')`);
  const g = (name: string) => Number(rows.find((r) => r.name === name)!.setting);
  return {
    vacuumThreshold: g('autovacuum_vacuum_threshold'),
    vacuumScaleFactor: g('autovacuum_vacuum_scale_factor'),
    insertThreshold: g('autovacuum_vacuum_insert_threshold'),
    insertScaleFactor: g('autovacuum_vacuum_insert_scale_factor'),
    analyzeThreshold: g('autovacuum_analyze_threshold'),
    analyzeScaleFactor: g('autovacuum_analyze_scale_factor'),
    freezeMaxAge: g('autovacuum_freeze_max_age'),
    multixactFreezeMaxAge: g('autovacuum_multixact_freeze_max_age'),
  };
}

export async function readTableStats(c: PgClient): Promise<TableStats[]> {
  // Stats are read fresh, not from this session's cached snapshot.
  await c.query('SELECT pg_stat_clear_snapshot()');
  const { rows } = await c.query(`
    SELECT n.nspname AS schema, c.relname AS name,
           CASE c.relkind WHEN 't' THEN 'toast' WHEN 'm' THEN 'matview' WHEN 'p' THEN 'partitioned' ELSE 'table' END AS kind,
           c.reltuples::float8 AS reltuples,
           -- relpages, not pg_table_size(): that takes a lock, and a locked table must not stall the plan.
           c.relpages::float8 * current_setting('block_size')::float8 AS size,
           coalesce(s.n_dead_tup, 0)::float8 AS dead, coalesce(s.n_live_tup, 0)::float8 AS live,
           coalesce(s.n_ins_since_vacuum, 0)::float8 AS ins, coalesce(s.n_mod_since_analyze, 0)::float8 AS mod,
           CASE WHEN c.relkind = 'p' THEN 0 ELSE age(c.relfrozenxid) END::float8 AS xid_age,
           CASE WHEN c.relkind = 'p' THEN 0 ELSE mxid_age(c.relminmxid) END::float8 AS mxid_age,
           greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum, greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,
           coalesce(c.reloptions, '{}') AS reloptions,
           CASE WHEN c.relkind = 'p' THEN
             (SELECT max(greatest(ps.last_analyze, ps.last_autoanalyze)) FROM pg_inherits h
                JOIN pg_stat_all_tables ps ON ps.relid = h.inhrelid WHERE h.inhparent = c.oid) END AS partitions_analyzed
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
     WHERE c.relkind IN ('r', 'm', 't', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND (c.relkind <> 't' OR c.relpages > 0 OR coalesce(s.n_dead_tup, 0) > 0)
     ORDER BY 1, 2`);
  return rows.map((r) => ({
    schema: r.schema,
    name: r.name,
    kind: r.kind,
    reltuples: r.reltuples,
    sizeBytes: r.size,
    nDeadTup: r.dead,
    nLiveTup: r.live,
    nInsSinceVacuum: r.ins,
    nModSinceAnalyze: r.mod,
    xidAge: r.xid_age,
    mxidAge: r.mxid_age,
    lastVacuum: r.last_vacuum?.toISOString() ?? null,
    lastAnalyze: r.last_analyze?.toISOString() ?? null,
    reloptions: r.reloptions,
    ...(r.kind === 'partitioned' ? { partitionsAnalyzed: r.partitions_analyzed?.toISOString() ?? null } : {}),
  }));
}

export interface HorizonHolder {
  kind: 'transaction' | 'prepared' | 'slot';
  name: string;
  xidAge: number;
  application?: string;
  since?: string;
  /** How long it has held its snapshot, in seconds (transactions and prepared ones). */
  seconds?: number;
  state?: string;
  query?: string;
}

/**
 * What holds the xmin horizon back, so VACUUM cannot remove rows deleted
 * after it: every open transaction with a snapshot (whatever its age: an 18 s
 * one holds cleanup back as surely as an hour-long one, only for less time),
 * prepared transactions, replication slots with an xmin. Oldest first.
 */
export async function readHorizonHolders(c: PgClient, minSeconds = 0): Promise<HorizonHolder[]> {
  const { rows } = await c.query(
    `
    SELECT 'transaction' AS kind, pid::text AS name, age(backend_xmin)::float8 AS age, application_name AS app,
           xact_start AS since, extract(epoch FROM now() - xact_start)::float8 AS seconds, state, left(query, 200) AS query
      FROM pg_stat_activity
     WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend'
       AND coalesce(xact_start, now()) <= now() - make_interval(secs => $1)
    UNION ALL
    SELECT 'prepared', gid, age(transaction)::float8, NULL, prepared, extract(epoch FROM now() - prepared)::float8, NULL, NULL FROM pg_prepared_xacts
    UNION ALL
    SELECT 'slot', slot_name::text, greatest(age(xmin), age(catalog_xmin))::float8, NULL, NULL, NULL, NULL, NULL
      FROM pg_replication_slots WHERE xmin IS NOT NULL OR catalog_xmin IS NOT NULL
    ORDER BY 3 DESC`,
    [minSeconds],
  );
  return rows.map((r) => ({
    kind: r.kind,
    name: r.name,
    xidAge: r.age,
    application: r.app ?? undefined,
    since: r.since?.toISOString(),
    seconds: r.seconds ?? undefined,
    state: r.state ?? undefined,
    query: r.query ?? undefined,
  }));
}

export function describeHolder(h: HorizonHolder): string {
  switch (h.kind) {
    case 'transaction':
      return `pid ${h.name} (${h.application || 'no application name'}, ${h.state}, transaction open ${Math.round(h.seconds ?? 0)}s since ${h.since}, xmin age ${h.xidAge} transactions): ${h.query ?? ''}`;
    case 'prepared':
      return `prepared transaction "${h.name}" (open ${Math.round(h.seconds ?? 0)}s since ${h.since}, xmin age ${h.xidAge} transactions)`;
    case 'slot':
      return `replication slot "${h.name}" (xmin age ${h.xidAge})`;
  }
}
