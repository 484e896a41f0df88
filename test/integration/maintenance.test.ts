// vacuum and health against real servers.
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { withClient } from '../../ops-scripts/lib/db.ts';
import { redisSpec } from '../../ops-scripts/lib/stack-context.ts';
import { startRedis, stopRedis } from '../../ops-scripts/lib/redis.ts';
import { seed } from '../../ops-scripts/lib/seed/load.ts';
import { runJob } from '../cli.ts';
import { logged, startTestStack, type TestStack } from '../harness.ts';

let stack: TestStack;
const su = (sql: string) => withClient(stack.pg, (c) => c.query(sql));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dirty = (sql: string) =>
  withClient(stack.pg, async (c) => {
    await c.query(sql);
    await c.query('SELECT pg_stat_force_next_flush()');
  });

interface Row {
  table: string;
  action: string;
  status: string;
  reason: string;
  detail?: string;
  deadBefore: number;
  deadAfter?: number;
}
const vacuum = async (args: string[], env: Record<string, string> = {}) => {
  const r = await runJob('vacuum', [...args, '--json'], { ...stack.env, ...env });
  return {
    code: r.code,
    stderr: r.stderr,
    report:
      r.code <= 1 && r.stdout
        ? (JSON.parse(r.stdout) as {
            horizon: { blocked: boolean; holders: string[] };
            attendanceWindow: { status: string; days?: number; detail?: string };
            tables: Row[];
            budgetSpent: boolean;
          })
        : undefined,
  };
};
const planned = (rows: Row[]) => rows.filter((t) => t.action !== 'none');

test.before(
  logged(async () => {
    stack = await startTestStack({ redis: true });
    const owner = stack.owner();
    await seed(owner, { seed: 'maint', students: 300, yearEnd: '2026-06-12' }, { existing: 'refuse' });
    // Autovacuum off for the tables the tests dirty, so only our job acts on them; then a clean baseline.
    await su(
      'ALTER TABLE grades SET (autovacuum_enabled = false); ALTER TABLE discipline_incidents SET (autovacuum_enabled = false)',
    );
    await su('VACUUM ANALYZE');
    await su('SELECT pg_stat_force_next_flush()');
  }),
);
test.after(async () => {
  await stack?.stop();
});

test('after a mass UPDATE the planner picks that table for dead tuples and leaves the others; running it lowers n_dead_tup', async () => {
  await dirty('UPDATE grades SET grade_value = grade_value');
  const dry = await vacuum(['--dry-run']);
  assert.is(dry.code, 0, dry.stderr);
  assert.equal(
    planned(dry.report!.tables).map((t) => t.table),
    ['public.grades'],
  );
  const g = dry.report!.tables.find((t) => t.table === 'public.grades')!;
  assert.is(g.action, 'vacuum-analyze');
  assert.match(g.reason, /^dead tuples over threshold/);
  assert.is(g.status, 'planned');
  const ran = await vacuum([]);
  assert.is(ran.code, 0, ran.stderr);
  const done = ran.report!.tables.find((t) => t.table === 'public.grades')!;
  assert.is(done.status, 'done');
  assert.ok(
    done.deadBefore > 1000 && done.deadAfter! < done.deadBefore / 10,
    `${done.deadBefore} -> ${done.deadAfter}`,
  );
});

test('a table with autovacuum_vacuum_scale_factor=0.01 is planned by its own threshold', async () => {
  await su(
    'ALTER TABLE discipline_incidents SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 5)',
  );
  const n = Number(
    (await su("SELECT reltuples FROM pg_class WHERE relname = 'discipline_incidents'")).rows[0].reltuples,
  );
  const own = 5 + 0.01 * n;
  await dirty(
    `DELETE FROM discipline_incidents WHERE id IN (SELECT id FROM discipline_incidents ORDER BY id LIMIT ${Math.ceil(own) + 2})`,
  );
  const dry = await vacuum(['--dry-run']);
  const d = dry.report!.tables.find((t) => t.table === 'public.discipline_incidents')!;
  assert.match(d.reason, new RegExp(`dead tuples over threshold \\(\\d+ > ${Math.round(own)}\\)`), d.reason);
  assert.ok(own < 50 + 0.2 * n, 'the global settings alone would not have picked it');
  await vacuum([]);
});

test('an open transaction holding back the xmin horizon is detected and named', async () => {
  const holder = new pg.Client(stack.pg);
  await holder.connect();
  try {
    await holder.query("SET application_name = 'reporting-notebook'");
    await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await holder.query('SELECT count(*) FROM students');
    const pid = (await holder.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    const r = await vacuum(['--dry-run']);
    assert.ok(r.report!.horizon.blocked);
    assert.ok(
      r.report!.horizon.holders.some(
        (h) => h.includes(`pid ${pid}`) && h.includes('reporting-notebook') && h.includes('idle in transaction'),
      ),
      r.report!.horizon.holders.join('\n'),
    );
  } finally {
    await holder.query('ROLLBACK');
    await holder.end();
  }
});

test('a young transaction still running a query holds the horizon too, and is reported with its age', async () => {
  const holder = new pg.Client(stack.pg);
  await holder.connect();
  holder.on('error', () => {});
  try {
    await holder.query("SET application_name = 'short-report'");
    await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await holder.query('SELECT count(*) FROM students');
    const pid = (await holder.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    const sleeping = holder.query('SELECT pg_sleep(30)').catch(() => {});
    await sleep(500);
    const r = await vacuum(['--dry-run']);
    const line = r.report!.horizon.holders.find((h) => h.includes(`pid ${pid}`));
    assert.ok(line, `an active transaction a second old is a holder: ${r.report!.horizon.holders.join('\n')}`);
    assert.match(line!, /short-report, active, transaction open \d+s/);
    await withClient(stack.pg, (c) => c.query('SELECT pg_cancel_backend($1)', [pid]));
    await sleeping;
  } finally {
    await holder.query('ROLLBACK').catch(() => {});
    await holder.end();
  }
});

test("the attendance window's move waits no longer than --lock-timeout behind a writer, and the run then fails naming it", async () => {
  const holder = new pg.Client(stack.pg);
  await holder.connect();
  try {
    // An attendance write not yet committed holds the window row (its trigger read the window's day).
    await holder.query('BEGIN');
    await holder.query(
      "INSERT INTO attendance_records (student_id, date, status) SELECT student_id, current_date, 'absent' FROM students LIMIT 1",
    );
    const r = await runJob('vacuum', ['--lock-timeout', '1s', '--json'], stack.env);
    assert.is(r.code, 1, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.is(report.attendanceWindow.status, 'failed');
    assert.match(report.attendanceWindow.detail, /lock/);
  } finally {
    await holder.query('ROLLBACK');
    await holder.end();
  }
  const again = await vacuum([]);
  assert.is(again.report!.attendanceWindow.status, 'done', 'once the writer is gone the window moves');
});

test('a table held under ACCESS EXCLUSIVE is skipped, not waited on, and reported', async () => {
  await dirty('UPDATE grades SET grade_value = grade_value');
  const holder = new pg.Client(stack.pg);
  await holder.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE grades IN ACCESS EXCLUSIVE MODE');
    const t0 = Date.now();
    const r = await vacuum(['--lock-timeout', '60s']);
    assert.ok(Date.now() - t0 < 20_000, `took ${Date.now() - t0} ms`);
    const g = r.report!.tables.find((t) => t.table === 'public.grades')!;
    assert.is(g.status, 'skipped');
    assert.match(g.detail!, /lock/);
  } finally {
    await holder.query('ROLLBACK');
    await holder.end();
  }
});

test('--full on a table above the limit without --force exits 3; --max-duration stops starting new tables', async () => {
  const full = await runJob('vacuum', ['--full', 'grades'], { ...stack.env, EDUPULSE_VACUUM_FULL_MAX_MB: '0' });
  assert.is(full.code, 3, full.stderr);
  assert.match(full.stderr, /--force/);
  const forced = await vacuum(['--full', 'grades', '--force'], { EDUPULSE_VACUUM_FULL_MAX_MB: '0' });
  assert.is(forced.report!.tables[0]!.status, 'done');
  assert.is((await runJob('vacuum', ['--full', 'no_such_table'], stack.env)).code, 2);
  await dirty('UPDATE grades SET grade_value = grade_value; UPDATE attendance_records SET minutes_late = minutes_late');
  const budget = await vacuum(['--max-duration', '0']);
  assert.ok(budget.report!.budgetSpent);
  assert.ok(planned(budget.report!.tables).length >= 2);
  assert.ok(planned(budget.report!.tables).every((t) => t.status === 'skipped' && /time budget/.test(t.detail!)));
  assert.is((await runJob('vacuum', ['--max-duration', 'soon'], stack.env)).code, 2);
});

interface HealthCheck {
  component: string;
  name: string;
  level: string;
  value: number | null;
  detail: string;
}
const health = async () => {
  const r = await runJob('health', ['--json'], stack.env);
  return { code: r.code, checks: JSON.parse(r.stdout).checks as HealthCheck[] };
};

test('health is all ok on a fresh stack, and its Prometheus output parses', async () => {
  const h = await health();
  assert.equal(
    h.checks.filter((c) => c.level !== 'ok').map((c) => `${c.name}: ${c.detail}`),
    [],
  );
  assert.is(h.code, 0);
  assert.ok(h.checks.some((c) => c.name === 'latest_predictions_query_ms'));
  assert.ok(
    h.checks.some((c) => c.name === 'attendance_concerns_query_ms' && c.level === 'ok'),
    'the attendance-concerns view answers as the reporting login',
  );
  // up made the months ahead of attendance_records' partitions; no row waits in its default one.
  const ahead = h.checks.find((c) => c.name === 'partition_months_ahead_attendance_records');
  assert.ok(ahead && ahead.level === 'ok' && ahead.value! >= 3, JSON.stringify(ahead));
  assert.ok(h.checks.some((c) => c.name === 'partition_default_rows_attendance_records' && c.value === 0));
  const rows = h.checks.find((c) => c.name === 'rows_attendance_records');
  assert.ok(rows, 'a partitioned table is counted through its partitions');
  const prom = await runJob('health', ['--prometheus'], stack.env);
  const families = parsePrometheusTextFormat(prom.stdout);
  const checks = families.find((f) => f.name === 'edupulse_health_check')!;
  assert.is(checks.type, 'GAUGE');
  assert.is(checks.metrics.length, h.checks.length);
  assert.ok(checks.metrics.every((m) => m.value === '0'));
  assert.ok(families.find((f) => f.name === 'edupulse_health_value')!.metrics.length > 10);
});

test('with archiving failing the archiver check says so', async () => {
  const wal = join(stack.ctx.paths.repoDir, 'wal');
  chmodSync(wal, 0o000);
  try {
    await su('CREATE TABLE IF NOT EXISTS walgen AS SELECT 1; SELECT pg_switch_wal()');
    let check: HealthCheck | undefined;
    for (let i = 0; i < 40; i++) {
      check = (await health()).checks.find((c) => c.name === 'archiver_failing');
      if (check?.level === 'critical') break;
      await sleep(250);
    }
    assert.is(check!.level, 'critical');
    assert.match(check!.detail, /failed at/);
  } finally {
    chmodSync(wal, 0o700);
  }
});

test('with Redis stopped, Redis is critical and the exit is 1', async () => {
  const spec = redisSpec(stack.ctx, stack.secrets.redis.password);
  await stopRedis(spec);
  try {
    const h = await health();
    assert.is(h.code, 1);
    assert.equal(
      h.checks.filter((c) => c.component === 'redis').map((c) => [c.name, c.level]),
      [['reachable', 'critical']],
    );
  } finally {
    await startRedis(spec);
  }
});

test.run();
