// The vacuum/analyze plan, from the server's own statistics: each table's
// effective autovacuum thresholds (global settings overridden by its
// reloptions), dead tuples, inserts and modifications since the last vacuum
// and analyze, and transaction-id age against the freeze limits. Pure: the
// statistics come in, the decisions with their reasons go out.

export interface TableStats {
  schema: string;
  name: string;
  kind: 'table' | 'toast' | 'matview' | 'partitioned';
  reltuples: number;
  sizeBytes: number;
  nDeadTup: number;
  nLiveTup: number;
  nInsSinceVacuum: number;
  nModSinceAnalyze: number;
  xidAge: number;
  mxidAge: number;
  lastVacuum: string | null;
  lastAnalyze: string | null;
  reloptions: string[];
  /** A partitioned table: when one of its partitions was last analyzed (by autovacuum or by hand). */
  partitionsAnalyzed?: string | null;
}

export interface VacuumSettings {
  vacuumThreshold: number;
  vacuumScaleFactor: number;
  insertThreshold: number;
  insertScaleFactor: number;
  analyzeThreshold: number;
  analyzeScaleFactor: number;
  freezeMaxAge: number;
  multixactFreezeMaxAge: number;
}

export type VacuumAction = 'vacuum-freeze' | 'vacuum-analyze' | 'vacuum' | 'analyze' | 'none';

export interface PlannedTable extends TableStats {
  action: VacuumAction;
  reason: string;
  thresholds: { vacuum: number; insert: number; analyze: number };
}

/** How close to autovacuum_freeze_max_age counts as "near wraparound". */
export const FREEZE_MARGIN = 0.8;

function reloption(opts: string[], name: string): number | undefined {
  const hit = opts.find((o) => o.startsWith(`${name}=`));
  return hit === undefined ? undefined : Number(hit.slice(name.length + 1));
}

export function effectiveThresholds(t: TableStats, s: VacuumSettings) {
  const o = (name: string, fallback: number) => reloption(t.reloptions, name) ?? fallback;
  const tuples = Math.max(0, t.reltuples);
  return {
    vacuum:
      o('autovacuum_vacuum_threshold', s.vacuumThreshold) +
      o('autovacuum_vacuum_scale_factor', s.vacuumScaleFactor) * tuples,
    insert:
      o('autovacuum_vacuum_insert_threshold', s.insertThreshold) +
      o('autovacuum_vacuum_insert_scale_factor', s.insertScaleFactor) * tuples,
    analyze:
      o('autovacuum_analyze_threshold', s.analyzeThreshold) +
      o('autovacuum_analyze_scale_factor', s.analyzeScaleFactor) * tuples,
    freezeMaxAge: Math.min(o('autovacuum_freeze_max_age', s.freezeMaxAge), s.freezeMaxAge),
    multixactFreezeMaxAge: Math.min(
      o('autovacuum_multixact_freeze_max_age', s.multixactFreezeMaxAge),
      s.multixactFreezeMaxAge,
    ),
  };
}

const n = (x: number) => Math.round(x).toLocaleString('en-US');

/** A partition analyzed this long after its table counts as analyzed since (an ANALYZE of the table does both). */
export const PARTITION_ANALYZE_SLACK_MS = 60_000;

export function planTable(t: TableStats, s: VacuumSettings): PlannedTable {
  const th = effectiveThresholds(t, s);
  const thresholds = { vacuum: th.vacuum, insert: th.insert, analyze: th.analyze };
  const plan = (action: VacuumAction, reason: string): PlannedTable => ({ ...t, action, reason, thresholds });
  // Autovacuum vacuums and analyzes partitions, never the partitioned table: its statistics as a whole (which
  // plan joins and aggregates over it) come only from an ANALYZE of it, after its partitions have changed.
  if (t.kind === 'partitioned') {
    if (!t.lastAnalyze) return plan('analyze', 'partitioned table never analyzed as a whole (autovacuum never does)');
    if (
      t.partitionsAnalyzed &&
      Date.parse(t.partitionsAnalyzed) > Date.parse(t.lastAnalyze) + PARTITION_ANALYZE_SLACK_MS
    )
      return plan('analyze', `a partition was analyzed since the table as a whole was (${t.lastAnalyze})`);
    return plan('none', 'analyzed as a whole since its partitions were');
  }
  if (t.xidAge > th.freezeMaxAge * FREEZE_MARGIN) {
    return plan(
      'vacuum-freeze',
      `transaction ID age ${n(t.xidAge)} near autovacuum_freeze_max_age ${n(th.freezeMaxAge)}`,
    );
  }
  if (t.mxidAge > th.multixactFreezeMaxAge * FREEZE_MARGIN) {
    return plan(
      'vacuum-freeze',
      `multixact ID age ${n(t.mxidAge)} near autovacuum_multixact_freeze_max_age ${n(th.multixactFreezeMaxAge)}`,
    );
  }
  const analyzable = t.kind !== 'toast';
  const vac = (reason: string) => plan(analyzable ? 'vacuum-analyze' : 'vacuum', reason);
  if (t.nDeadTup > th.vacuum) return vac(`dead tuples over threshold (${n(t.nDeadTup)} > ${n(th.vacuum)})`);
  if (t.nInsSinceVacuum > th.insert)
    return vac(`inserts since the last vacuum over threshold (${n(t.nInsSinceVacuum)} > ${n(th.insert)})`);
  if (analyzable && t.nModSinceAnalyze > th.analyze) {
    return plan(
      'analyze',
      `rows modified since the last analyze over threshold (${n(t.nModSinceAnalyze)} > ${n(th.analyze)})`,
    );
  }
  if (analyzable && !t.lastAnalyze && t.nLiveTup > 0) return plan('analyze', 'never analyzed');
  return plan('none', 'below thresholds');
}

export const planVacuum = (tables: TableStats[], s: VacuumSettings) => tables.map((t) => planTable(t, s));
