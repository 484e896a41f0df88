// The vacuum plan for a partitioned table: autovacuum never analyzes one as a
// whole, so the job does, after its partitions have been analyzed since.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { planTable, type TableStats, type VacuumSettings } from '../../ops-scripts/lib/maintenance/vacuum-plan.ts';

const settings: VacuumSettings = {
  vacuumThreshold: 50,
  vacuumScaleFactor: 0.2,
  insertThreshold: 1000,
  insertScaleFactor: 0.2,
  analyzeThreshold: 50,
  analyzeScaleFactor: 0.1,
  freezeMaxAge: 200_000_000,
  multixactFreezeMaxAge: 400_000_000,
};
const parent = (over: Partial<TableStats>): TableStats => ({
  schema: 'public',
  name: 'attendance_records',
  kind: 'partitioned',
  reltuples: -1,
  sizeBytes: 0,
  nDeadTup: 0,
  nLiveTup: 0,
  nInsSinceVacuum: 0,
  nModSinceAnalyze: 0,
  xidAge: 0,
  mxidAge: 0,
  lastVacuum: null,
  lastAnalyze: null,
  reloptions: [],
  partitionsAnalyzed: null,
  ...over,
});
const decide = (t: TableStats) => planTable(t, settings).action;

test('a partitioned table is analyzed as a whole when never analyzed, or when a partition was since', () => {
  assert.is(decide(parent({})), 'analyze');
  const at = '2026-12-06T03:00:00.000Z';
  // ANALYZE of the table analyzes its partitions in the same run, a moment later: not a reason again.
  assert.is(decide(parent({ lastAnalyze: at, partitionsAnalyzed: '2026-12-06T03:00:02.000Z' })), 'none');
  assert.is(decide(parent({ lastAnalyze: at, partitionsAnalyzed: '2026-12-06T09:30:00.000Z' })), 'analyze');
  assert.is(decide(parent({ lastAnalyze: at, partitionsAnalyzed: null })), 'none');
});

test.run();
