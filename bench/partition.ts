// npm run bench:partition (#19 item 4): what declarative range partitioning of
// attendance_records would give, measured before converting anything. One
// seeded cluster (BENCH_STUDENTS, 50,000 by default; the school year up to
// today, so the seed's year spans two calendar years); beside the table, a
// copy partitioned by month (same rows, same indexes). Side by side, medians
// of BENCH_RUNS: the documented 30-day aggregate (live, as before the counts
// table), a VACUUM (FREEZE) of every page, and retiring the oldest month:
// DELETE of its rows against DETACH + DROP of its partition (each in a
// transaction rolled back, so every run starts from the same tables). The
// stack starts from the table as it was before migration partition-attendance
// (one plain table); at the end that migration's statements convert it
// online under four writers, each step timed with the writers' slowest insert
// while it ran.
import { withClient, type PgClient } from '../ops-scripts/lib/db.ts';
import { declarations } from '../roles/declarations.ts';
import { migrate, migratorConfig } from '../migrations/engine/migrate.ts';
import { ATTENDANCE } from '../migrations/1764028800011_partition-attendance.ts';
import { addBound, createKeyIndex, swapIn, validateBound } from '../migrations/engine/partition-table.ts';
import pg from 'pg';
import { readSecrets } from '../ops-scripts/lib/secrets.ts';
import { seed } from '../ops-scripts/lib/seed/load.ts';
import { startTestStack } from '../test/harness.ts';

const STUDENTS = Number(process.env.BENCH_STUDENTS ?? 50_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const LIVE = (t: string) => `SELECT a.student_id, count(*) FROM ${t} a
   WHERE a.date >= current_date - 30 AND a.status IN ('absent', 'tardy') GROUP BY a.student_id HAVING count(*) > 5`;

async function timed(c: PgClient, sql: string): Promise<number> {
  const t0 = performance.now();
  await c.query(sql);
  return performance.now() - t0;
}

const stack = await startTestStack();
try {
  const owner = migratorConfig(stack.pg, readSecrets(stack.ctx.paths.secretsFile)!.roles[declarations.migrator]!);
  await migrate(owner, { direction: 'down', count: 1 });
  const today = new Date().toISOString().slice(0, 10);
  const loaded = await seed(owner, { seed: 'bench', students: STUDENTS, yearEnd: today }, { existing: 'refuse' });
  console.log(`bench:partition: ${loaded.rows.attendance_records!.toLocaleString()} attendance rows seeded`);
  await withClient(stack.pg, async (c) => {
    const { rows: months } = await c.query<{ m: string }>(
      "SELECT DISTINCT to_char(date_trunc('month', date), 'YYYY-MM-DD') AS m FROM attendance_records ORDER BY 1",
    );
    await c.query(`CREATE TABLE attendance_by_month (LIKE attendance_records INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
                     PARTITION BY RANGE (date)`);
    for (const { m } of months)
      await c.query(`CREATE TABLE "attendance_${m.slice(0, 7).replace('-', '_')}" PARTITION OF attendance_by_month
                       FOR VALUES FROM ('${m}') TO (('${m}'::date + interval '1 month')::date)`);
    let s = performance.now();
    await c.query('INSERT INTO attendance_by_month SELECT * FROM attendance_records');
    const copySeconds = (performance.now() - s) / 1000;
    s = performance.now();
    await c.query('CREATE INDEX ON attendance_by_month (student_id, date)');
    await c.query(
      "CREATE INDEX ON attendance_by_month (date) INCLUDE (student_id, status) WHERE status IN ('absent', 'tardy')",
    );
    await c.query('ALTER TABLE attendance_by_month ADD PRIMARY KEY (id, date)');
    console.log(
      `  partitioned copy: ${months.length} monthly partitions, rows in ${copySeconds.toFixed(1)} s, indexes in ${((performance.now() - s) / 1000).toFixed(1)} s`,
    );
    await c.query('VACUUM ANALYZE attendance_records, attendance_by_month');
    const oldest = months[0]!.m;
    const oldestPart = `"attendance_${oldest.slice(0, 7).replace('-', '_')}"`;
    const rows: Array<[string, string, string]> = [];
    const side = async (name: string, plain: () => Promise<number>, parted: () => Promise<number>) => {
      const a: number[] = [],
        b: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        a.push(await plain());
        b.push(await parted());
      }
      rows.push([name, `${median(a).toFixed(1)} ms`, `${median(b).toFixed(1)} ms`]);
    };
    await timed(c, LIVE('attendance_records'));
    await timed(c, LIVE('attendance_by_month'));
    await side(
      '30-day aggregate (live)',
      () => timed(c, LIVE('attendance_records')),
      () => timed(c, LIVE('attendance_by_month')),
    );
    await side(
      'VACUUM (FREEZE) of every page',
      () => timed(c, 'VACUUM (FREEZE, DISABLE_PAGE_SKIPPING) attendance_records'),
      () => timed(c, 'VACUUM (FREEZE, DISABLE_PAGE_SKIPPING) attendance_by_month'),
    );
    const rolledBack = async (sql: string[]) => {
      await c.query('BEGIN');
      const t0 = performance.now();
      for (const q of sql) await c.query(q);
      const ms = performance.now() - t0;
      await c.query('ROLLBACK');
      return ms;
    };
    await side(
      `retire the oldest month (${oldest.slice(0, 7)})`,
      () =>
        rolledBack([
          'ALTER TABLE attendance_records DISABLE TRIGGER USER',
          `DELETE FROM attendance_records WHERE date < ('${oldest}'::date + interval '1 month')::date`,
        ]),
      () => rolledBack([`ALTER TABLE attendance_by_month DETACH PARTITION ${oldestPart}`, `DROP TABLE ${oldestPart}`]),
    );
    console.log(`\nbench:partition: ${STUDENTS} students, median of ${RUNS} (side by side)`);
    console.log('| measure | one table | by month |\n|---|---|---|');
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
    await c.query('DROP TABLE attendance_by_month');
  });
  // The conversion itself, online, under writers (as the application: app_user through the table).
  const app = { ...stack.pg, user: 'app_user', password: readSecrets(stack.ctx.paths.secretsFile)!.roles.app_user! };
  const pool = new pg.Pool({ ...app, max: 4 });
  const students = (await pool.query('SELECT student_id FROM students ORDER BY 1 LIMIT 100')).rows.map(
    (r) => r.student_id,
  );
  let stop = false;
  /** Every acknowledged insert: when it ended and how long it took. */
  const acks: Array<{ end: number; ms: number }> = [];
  const writer = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const t0 = performance.now();
      await pool.query(
        "INSERT INTO attendance_records (student_id, date, status) VALUES ($1, current_date, 'present')",
        [students[(w * 13 + i) % students.length]],
      );
      const end = performance.now();
      acks.push({ end, ms: end - t0 });
    }
  };
  const writers = [0, 1, 2, 3].map(writer);
  await new Promise((r) => setTimeout(r, 500));
  // The migration's statements one by one, as it runs them (outside a transaction, as the owner), each timed,
  // with the writers' slowest insert while it ran.
  const steps: Array<[string, string]> = [
    ['bound: CHECK NOT VALID', addBound(ATTENDANCE)],
    ['VALIDATE (writers go on)', validateBound(ATTENDANCE)],
    ['key index CONCURRENTLY', createKeyIndex(ATTENDANCE)],
    ['swap (one transaction)', swapIn(ATTENDANCE)],
    ['ANALYZE as a whole', 'ANALYZE public.attendance_records'],
  ];
  const timings: Array<[string, string, string, string]> = [];
  const s0 = performance.now();
  await withClient(owner, async (c) => {
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${ATTENDANCE.partitionSchema}`);
    for (const [name, sql] of steps) {
      const t0 = performance.now();
      await c.query(sql);
      const t1 = performance.now();
      const during = acks.filter((a) => a.end >= t0 && a.end - a.ms <= t1);
      timings.push([
        name,
        `${((t1 - t0) / 1000).toFixed(3)} s`,
        during.length.toLocaleString(),
        `${Math.max(0, ...during.map((a) => a.ms)).toFixed(0)} ms`,
      ]);
    }
  });
  const seconds = (performance.now() - s0) / 1000;
  await new Promise((r) => setTimeout(r, 500));
  stop = true;
  await Promise.all(writers);
  await pool.end();
  const inside = acks.filter((a) => a.end >= s0 && a.end <= s0 + seconds * 1000);
  const typical = [...acks].sort((a, b) => a.ms - b.ms)[Math.floor(acks.length / 2)]!.ms;
  console.log(
    `\nconversion (migration partition-attendance's statements) of ${loaded.rows.attendance_records!.toLocaleString()} rows under 4 writers: ${seconds.toFixed(1)} s, ${inside.length.toLocaleString()} inserts acknowledged meanwhile, median insert ${typical.toFixed(1)} ms`,
  );
  console.log('| step | time | inserts acknowledged during it | slowest insert |\n|---|---|---|---|');
  for (const t of timings) console.log(`| ${t.join(' | ')} |`);
} finally {
  await stack.stop();
}
