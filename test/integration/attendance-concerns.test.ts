// student_attendance_concerns, read from the trigger-kept counts, against the
// live definition (every absence and tardy of the last 30 days aggregated) on
// the same data: after a bulk load, edits, deletes and erasures, with the
// window behind today (days passed since it last moved), moved, ahead of
// today, across a real midnight (the reader's time zone), and under writers
// racing the window's move.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withClient, type PgClient, type PgConfig } from '../../ops-scripts/lib/db.ts';
import { seed } from '../../ops-scripts/lib/seed/load.ts';
import { runVacuum } from '../../ops-scripts/lib/maintenance/vacuum-run.ts';
import { logged, startTestStack, type TestStack } from '../harness.ts';
import { countsDrift } from '../attendance-counts.ts';

let stack: TestStack;
const app = (): PgConfig => stack.login('app_user');

const LIVE = `
  SELECT a.student_id, count(*) FILTER (WHERE a.status = 'absent') AS absences,
         count(*) FILTER (WHERE a.status = 'tardy') AS tardies, count(*) AS issues
    FROM attendance_records a
   WHERE a.date >= current_date - 30 AND a.status IN ('absent', 'tardy')
   GROUP BY a.student_id HAVING count(*) > 5 ORDER BY 1`;
const OURS = `
  SELECT student_id, absences_30d AS absences, tardies_30d AS tardies, issues_30d AS issues
    FROM student_attendance_concerns ORDER BY 1`;

async function assertExact(label: string, c?: PgClient): Promise<number> {
  const check = async (c: PgClient) => {
    const live = (await c.query(LIVE)).rows;
    assert.equal((await c.query(OURS)).rows, live, `${label}: the view differs from the live count`);
    // Every stored count is exact as of the window's day, not only those above five.
    assert.equal(await countsDrift(c), [], `${label}: stored counts that differ from the table`);
    return live.length;
  };
  return c ? check(c) : withClient(stack.pg, check);
}

const asOf = async (c: PgClient) =>
  (await c.query("SELECT to_char(as_of, 'YYYY-MM-DD') AS d FROM edupulse_derived.attendance_window")).rows[0].d;

test.before(
  logged(async () => {
    stack = await startTestStack();
    const today = new Date().toISOString().slice(0, 10);
    await seed(stack.owner(), { seed: 'concerns', students: 1500, yearEnd: today }, { existing: 'refuse' });
  }),
);
test.after(async () => {
  await stack?.stop();
});

test('after a bulk load (COPY through the triggers) the view equals the live count', async () => {
  const n = await assertExact('after seed');
  assert.ok(n > 10, `the seeded data has students with concerns (${n})`);
});

test("the app's inserts, edits (status and dates across the window's edge), deletes and an erasure keep it exact", async () => {
  await withClient(app(), async (c) => {
    await c.query(`INSERT INTO attendance_records (student_id, date, status)
                   SELECT 'STU0000007', current_date - d, 'absent' FROM generate_series(0, 9) d`);
    await assertExact('app inserts');
    await c.query("UPDATE attendance_records SET status = 'tardy' WHERE id % 5 = 0 AND status = 'absent'");
    await c.query("UPDATE attendance_records SET status = 'present' WHERE id % 7 = 0 AND status <> 'present'");
    await assertExact('status edits');
    // Dates moved both ways over current_date - 30, and into the future (the window is open-ended).
    await c.query('UPDATE attendance_records SET date = date + 6 WHERE id % 11 = 0');
    await c.query('UPDATE attendance_records SET date = date - 6 WHERE id % 13 = 0');
    await assertExact('date edits');
    await c.query('DELETE FROM attendance_records WHERE id % 17 = 0');
    await assertExact('deletes');
  });
  await withClient(stack.pg, async (c) => {
    const gone = (await c.query(`${OURS} LIMIT 3`)).rows.map((r) => r.student_id);
    await c.query('DELETE FROM students WHERE student_id = ANY ($1)', [gone]);
    await assertExact('erasure (cascade)', c);
    const left = await c.query(
      'SELECT count(*)::int AS n FROM edupulse_derived.attendance_issue_counts WHERE student_id = ANY ($1) AND absences + tardies > 0',
      [gone],
    );
    assert.is(left.rows[0].n, 0, 'an erased student has nothing counted');
  });
});

test('days after the window last moved the view is exact; the move (by the vacuum job) subtracts what left it', async () => {
  await withClient(stack.pg, async (c) => {
    // As if the window last moved four days ago: counts as of then.
    await c.query('SELECT edupulse_derived.rebuild_attendance_counts(current_date - 4)');
    await assertExact('window 4 days behind', c);
    const plan = (await c.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${OURS}`)).rows[0]['QUERY PLAN'][0].Plan;
    const nodes: Array<Record<string, unknown>> = [];
    const walk = (n: Record<string, unknown>) => {
      nodes.push(n);
      for (const k of (n.Plans as Array<Record<string, unknown>> | undefined) ?? []) walk(k);
    };
    walk(plan);
    assert.ok(
      nodes.some((n) => n['Index Name'] === 'idx_attendance_issue_counts_over_five' && Number(n['Actual Loops']) > 0),
      'candidates come from the partial index',
    );
    const liveScans = nodes.filter((n) =>
      /date >= \(CURRENT_DATE - 30\)/.test(String(n['Index Cond'] ?? '') + String(n.Filter ?? '')),
    );
    assert.ok(liveScans.length > 0, 'the plan holds the live count for a clock set back');
    assert.ok(
      liveScans.every((n) => Number(n['Actual Loops']) === 0),
      "the live aggregate over the window's rows does not run",
    );
  });
  const report = await runVacuum(stack.pg, { fullMaxBytes: 1 << 30 });
  assert.equal(report.attendanceWindow, { status: 'done', days: 4 });
  await withClient(stack.pg, async (c) => {
    assert.is(await asOf(c), (await c.query("SELECT to_char(current_date, 'YYYY-MM-DD') AS d")).rows[0].d);
    await assertExact('window moved to today', c);
    const again = await runVacuum(stack.pg, { fullMaxBytes: 1 << 30 });
    assert.equal(again.attendanceWindow, { status: 'done', days: 0 }, 'moving it again the same day changes nothing');
    const dry = await runVacuum(stack.pg, { fullMaxBytes: 1 << 30, dryRun: true });
    assert.is(dry.attendanceWindow.status, 'skipped', 'a dry run moves nothing');
  });
});

test('over midnight: a reader whose day is already tomorrow, and one whose day is before the window, both exact', async () => {
  await withClient(stack.pg, async (c) => {
    await c.query('SELECT edupulse_derived.rebuild_attendance_counts(current_date)');
    const zones = ['Pacific/Kiritimati', 'Etc/GMT+12']; // UTC+14 and UTC-12: their dates always differ
    const days: string[] = [];
    for (const tz of zones) {
      await c.query(`SET TIME ZONE '${tz}'`);
      days.push((await c.query("SELECT to_char(current_date, 'YYYY-MM-DD') AS d")).rows[0].d);
    }
    assert.ok(days[0]! > days[1]!, `the two readers are on different days (${days.join(' vs ')})`);
    // The window as of the earlier reader's day: the later reader is past midnight since.
    await c.query(`SET TIME ZONE '${zones[1]}'`);
    await c.query('SELECT edupulse_derived.rebuild_attendance_counts(current_date)');
    await c.query(`SET TIME ZONE '${zones[0]}'`);
    await assertExact('reader past midnight', c);
    // The window as of the later day: the earlier reader's clock is before it (counted live).
    await c.query('SELECT edupulse_derived.rebuild_attendance_counts(current_date)');
    await c.query(`SET TIME ZONE '${zones[1]}'`);
    await assertExact('reader before the window', c);
    await c.query('RESET TIME ZONE');
  });
});

test('writers racing the window move lose no count', async () => {
  await withClient(stack.pg, (c) => c.query('SELECT edupulse_derived.rebuild_attendance_counts(current_date - 3)'));
  const students = await withClient(stack.pg, async (c) =>
    (await c.query('SELECT student_id FROM students ORDER BY student_id LIMIT 40')).rows.map((r) => r.student_id),
  );
  const writer = (w: number) =>
    withClient(app(), async (c) => {
      for (let i = 0; i < 25; i++) {
        const sid = students[(w * 7 + i) % students.length];
        // Some rows dated in the days the move drops from the window, some inside it.
        await c.query(
          `INSERT INTO attendance_records (student_id, date, status) VALUES ($1, current_date - $2::int, $3)`,
          [sid, 30 + (i % 5), i % 2 ? 'absent' : 'tardy'],
        );
        if (i % 6 === 0)
          await c.query(
            'DELETE FROM attendance_records WHERE id = (SELECT max(id) FROM attendance_records WHERE student_id = $1)',
            [sid],
          );
      }
    });
  await Promise.all([
    ...[0, 1, 2, 3].map(writer),
    withClient(stack.pg, (c) => c.query('SELECT edupulse_derived.advance_attendance_window(current_date)')),
  ]);
  await assertExact('after the race');
});

test.run();
