// diagnose against a real server with a lock tree and a redundant index; the schedule's output and its in-process runner.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { defaultSettings } from '../../infra/settings.ts';
import { withClient } from '../../ops-scripts/lib/db.ts';
import {
  crontab,
  onCalendar,
  runScheduler,
  scheduledJobs,
  systemdUnits,
} from '../../ops-scripts/lib/maintenance/schedule.ts';
import { runJob } from '../cli.ts';
import { logged, startTestStack, type TestStack } from '../harness.ts';

let stack: TestStack;
test.before(
  logged(async () => {
    stack = await startTestStack();
  }),
);
test.after(async () => {
  await stack?.stop();
});

test('diagnose answers while a bloated table is held under ACCESS EXCLUSIVE, and shows the lock-wait tree', async () => {
  await withClient(stack.pg, async (c) => {
    await c.query("CREATE TABLE held_table AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 5000) g");
    await c.query('ANALYZE held_table');
    await c.query('DELETE FROM held_table');
    await c.query('SELECT pg_stat_force_next_flush()');
  });
  for (let i = 0; i < 50; i++) {
    const dead = await withClient(
      stack.pg,
      async (c) =>
        (
          await c.query(
            "SELECT coalesce(n_dead_tup, 0)::int AS n FROM pg_stat_user_tables WHERE relname = 'held_table'",
          )
        ).rows[0]?.n ?? 0,
    );
    if (dead >= 5000) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const root = new pg.Client(stack.pg);
  const waiter = new pg.Client(stack.pg);
  await root.connect();
  await waiter.connect();
  try {
    await root.query("SET application_name = 'incident-holder'");
    await root.query('BEGIN');
    await root.query('LOCK TABLE held_table IN ACCESS EXCLUSIVE MODE');
    const rootPid = (await root.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    const waiting = waiter.query('SELECT count(*) FROM held_table').catch(() => {});
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const r = await runJob('diagnose', ['--json'], stack.env);
    assert.is(r.code, 0, r.stderr);
    assert.ok(Date.now() - t0 < 15_000, 'no wait behind the lock');
    const findings = JSON.parse(r.stdout).findings as Array<{ section: string; object: string; detail: string }>;
    assert.ok(
      findings.some((f) => f.section.startsWith('bloat') && f.object === 'public.held_table'),
      'the locked table is still assessed, from statistics',
    );
    const lock = findings.find((f) => f.section === 'lock waits' && f.object.startsWith(`pid ${rootPid} `))!;
    assert.ok(lock, JSON.stringify(findings.map((f) => f.object)));
    assert.match(lock.detail, /waits .*SELECT count\(\*\) FROM held_table/);
    await root.query('ROLLBACK');
    await waiting;
  } finally {
    await root.end();
    await waiter.end();
    await withClient(stack.pg, (c) => c.query('DROP TABLE IF EXISTS held_table'));
  }
});

test('diagnose names the root of a lock wait tree, a redundant index, and suggests actions', async () => {
  await withClient(stack.pg, (c) => c.query('CREATE INDEX redundant_grades_student ON grades (student_id)'));
  const root = new pg.Client(stack.pg);
  const waiter = new pg.Client(stack.pg);
  await root.connect();
  await waiter.connect();
  try {
    await root.query("SET application_name = 'forgotten-session'");
    await root.query('BEGIN');
    await root.query('LOCK TABLE grades IN ACCESS EXCLUSIVE MODE');
    const rootPid = (await root.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    const waiting = waiter.query('SELECT count(*) FROM grades').catch(() => {});
    await new Promise((r) => setTimeout(r, 300));
    const r = await runJob('diagnose', ['--json'], stack.env);
    assert.is(r.code, 0, r.stderr);
    const findings = JSON.parse(r.stdout).findings as Array<{
      section: string;
      object: string;
      detail: string;
      suggestion: string;
    }>;
    const lock = findings.find((f) => f.section === 'lock waits')!;
    assert.ok(lock, JSON.stringify(findings.map((f) => f.section)));
    assert.match(lock.object, new RegExp(`pid ${rootPid} \\(forgotten-session, idle in transaction\\)`));
    assert.match(lock.detail, /waits .*SELECT count\(\*\) FROM grades/);
    assert.match(lock.suggestion, new RegExp(`pg_terminate_backend\\(${rootPid}\\)`));
    const dup = findings.find(
      (f) => f.section === 'duplicate indexes' && f.object === 'public.redundant_grades_student',
    )!;
    assert.ok(dup);
    assert.match(dup.detail, /idx_grades_student_course/);
    assert.match(dup.suggestion, /DROP INDEX CONCURRENTLY public.redundant_grades_student/);
    assert.ok(findings.some((f) => f.section === 'unused indexes' && f.object === 'public.redundant_grades_student'));
    await root.query('ROLLBACK');
    await waiting;
  } finally {
    await root.end();
    await waiter.end();
  }
});

test('an index on the partitioned attendance table is judged with its partitions: named once, by its partitioned index', async () => {
  const r = await runJob('diagnose', ['--json'], stack.env);
  assert.is(r.code, 0, r.stderr);
  const unused = (
    JSON.parse(r.stdout).findings as Array<{ section: string; object: string; detail: string; suggestion: string }>
  ).filter((f) => f.section === 'unused indexes');
  const partitionIndexes = await withClient(stack.pg, async (c) =>
    (
      await c.query(
        "SELECT format('%I.%I', n.nspname, c.relname) AS i FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'i' AND c.relispartition",
      )
    ).rows.map((x) => x.i as string),
  );
  assert.ok(partitionIndexes.length > 0, 'the stack has partitions with indexes');
  assert.equal(
    unused.filter((f) => partitionIndexes.includes(f.object)).map((f) => f.object),
    [],
    "no partition's index is suggested for dropping by itself",
  );
  const tree = unused.filter((f) => f.object === 'public.idx_attendance_student_date');
  assert.is(tree.length, 1, JSON.stringify(unused.map((f) => f.object)));
  assert.match(tree[0]!.detail, /partitioned: none of its \d+ partitions' indexes/);
  assert.match(tree[0]!.suggestion, /declared in views\/indexes.ts/);
  await withClient(stack.pg, async (c) => {
    await c.query('SET enable_seqscan = off');
    await c.query(
      "SELECT count(*) FROM attendance_records WHERE student_id = 'STU0000001' AND date >= current_date - 30",
    );
    await c.query('SELECT pg_stat_force_next_flush()');
  });
  const after = JSON.parse((await runJob('diagnose', ['--json'], stack.env)).stdout).findings as Array<{
    section: string;
    object: string;
  }>;
  assert.not.ok(
    after.some((f) => f.section === 'unused indexes' && f.object === 'public.idx_attendance_student_date'),
    "scanned through one partition's index, the partitioned index is in use",
  );
});

test("the schedule prints a crontab line and a systemd timer per job, at the settings' times", () => {
  const jobs = scheduledJobs(defaultSettings.maintenance.schedule);
  const tab = crontab(jobs, {
    node: '/usr/bin/node',
    bin: '/opt/edupulse-db/bin/edupulse-db.js',
    env: { EDUPULSE_STATE_DIR: '/var/lib/edupulse' },
    logDir: '/var/lib/edupulse/logs',
  });
  assert.match(tab, /^EDUPULSE_STATE_DIR=\/var\/lib\/edupulse$/m);
  assert.match(
    tab,
    /^15 1 \* \* \* \/usr\/bin\/node \/opt\/edupulse-db\/bin\/edupulse-db.js backup --type physical >> \/var\/lib\/edupulse\/logs\/backup-physical.log 2>&1/m,
  );
  assert.match(tab, /^0 5 \* \* 0 .* drill >> /m);
  assert.match(tab, /^20 6 \* \* \* .* report >> /m);
  assert.is(tab.split('\n').filter((l) => /^[\d*]/.test(l)).length, 6);
  assert.is(onCalendar('15 1 * * *'), '*-*-* 01:15:00');
  assert.is(onCalendar('0 5 * * 0'), 'Sun *-*-* 05:00:00');
  const units = systemdUnits(jobs, { node: '/usr/bin/node', bin: '/b', env: {}, logDir: '/l' });
  assert.is(units.match(/\[Timer\]/g)!.length, 6);
});

test('the in-process scheduler runs a job on its timetable and refuses to overlap it', async () => {
  const events: Array<{ job: string; refused?: string; ok?: boolean }> = [];
  let running = 0,
    maxRunning = 0;
  const scheduler = runScheduler(
    [
      {
        name: 'slow',
        cron: '* * * * * *',
        run: async () => {
          running++;
          maxRunning = Math.max(maxRunning, running);
          await new Promise((r) => setTimeout(r, 2200));
          running--;
          return { ok: true, detail: 'slept' };
        },
      },
    ],
    (e) => events.push(e as { job: string }),
  );
  await new Promise((r) => setTimeout(r, 5000));
  scheduler.stop();
  await new Promise((r) => setTimeout(r, 2500));
  assert.ok(events.filter((e) => e.ok).length >= 1, JSON.stringify(events));
  assert.ok(
    events.filter((e) => e.refused).length >= 1,
    'a run that came due while the previous one was going was refused',
  );
  assert.is(maxRunning, 1, 'never two at once');
});

test.run();
