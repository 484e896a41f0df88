// attendance_records partitioned by month (#19 item 4): the online conversion
// (migration partition-attendance) with writers writing through it, and the
// reconcile engine keeping the months (views/partitions.ts): made ahead, a
// row no month held moved out of the default partition into its own, whole
// partitions retired past a retention. Real servers throughout.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { withClient, type PgClient, type PgConfig } from '../../ops-scripts/lib/db.ts';
import { seed } from '../../ops-scripts/lib/seed/load.ts';
import { migrate, migrationNames } from '../../migrations/engine/migrate.ts';
import { planReconcile, projectDeclarations, reconcile } from '../../views/engine/index.ts';
import { addMonths } from '../../views/engine/partitions.ts';
import { ATTENDANCE } from '../../migrations/1764028800011_partition-attendance.ts';
import { addBound, createKeyIndex, validateBound } from '../../migrations/engine/partition-table.ts';
import { runJob } from '../cli.ts';
import { logged, startTestStack, type TestStack } from '../harness.ts';
import { countsDrift } from '../attendance-counts.ts';

let stack: TestStack;
const app = (): PgConfig => stack.login('app_user');
const su = <T>(fn: (c: PgClient) => Promise<T>) => withClient(stack.pg, fn);
const P = 'edupulse_partitions';
let seeded = 0;
const CONVERSION = '1764028800011_partition-attendance';
/** The conversion and the migrations after it, in order: a database made before the conversion has none of them. */
const fromConversion = () => migrationNames().slice(migrationNames().indexOf(CONVERSION));

const partitionsOf = (c: PgClient, table = 'public.attendance_records') =>
  c
    .query<{ name: string; bound: string }>(
      `SELECT p.oid::regclass::text AS name, pg_get_expr(p.relpartbound, p.oid) AS bound
         FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhrelid WHERE h.inhparent = $1::regclass ORDER BY 1`,
      [table],
    )
    .then((r) => r.rows);

test.before(
  logged(async () => {
    stack = await startTestStack();
    // As a database made before the conversion: one plain table, with data.
    await migrate(stack.owner(), { direction: 'down', count: fromConversion().length });
    const today = new Date().toISOString().slice(0, 10);
    const r = await seed(stack.owner(), { seed: 'parts', students: 400, yearEnd: today }, { existing: 'refuse' });
    seeded = r.rows.attendance_records!;
  }),
);
test.after(async () => {
  await stack?.stop();
});

test('the conversion runs online: writers going through the table keep writing and lose nothing', async () => {
  assert.is(
    (await su((c) => c.query("SELECT relkind FROM pg_class WHERE oid = 'attendance_records'::regclass"))).rows[0]
      .relkind,
    'r',
  );
  const students = (await su((c) => c.query('SELECT student_id FROM students ORDER BY 1 LIMIT 40'))).rows.map(
    (r) => r.student_id as string,
  );
  const pool = new pg.Pool({ ...app(), max: 4 });
  const acked: Array<{ id: number; at: number }> = [];
  const errors: string[] = [];
  let stop = false;
  let worstMs = 0;
  const writer = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const t0 = performance.now();
      try {
        const { rows } = await pool.query(
          'INSERT INTO attendance_records (student_id, date, status) VALUES ($1, current_date - $2::int, $3) RETURNING id',
          [students[(w * 7 + i) % students.length], i % 40, ['absent', 'tardy', 'present'][i % 3]],
        );
        acked.push({ id: rows[0].id, at: performance.now() });
      } catch (err) {
        errors.push((err as Error).message);
      }
      worstMs = Math.max(worstMs, performance.now() - t0);
    }
  };
  const writers = [0, 1, 2, 3].map(writer);
  await new Promise((r) => setTimeout(r, 300));
  const started = performance.now();
  const ran = await migrate(stack.owner(), { direction: 'up' });
  const ended = performance.now();
  await new Promise((r) => setTimeout(r, 300));
  stop = true;
  await Promise.all(writers);
  await pool.end();

  assert.equal(
    ran.map((m) => m.name),
    fromConversion(),
  );
  assert.equal(errors, [], 'no writer saw an error');
  assert.ok(acked.filter((a) => a.at > started && a.at < ended).length > 0, 'writes were acknowledged during it');
  console.log(
    `  conversion: ${(ended - started).toFixed(0)} ms for ${seeded} rows; ${acked.length} writes, the slowest ${worstMs.toFixed(0)} ms`,
  );
  await su(async (c) => {
    assert.is(
      (await c.query("SELECT relkind FROM pg_class WHERE oid = 'attendance_records'::regclass")).rows[0].relkind,
      'p',
    );
    const ids = acked.map((a) => a.id);
    const found = await c.query('SELECT count(*)::int AS n FROM attendance_records WHERE id = ANY ($1)', [ids]);
    assert.is(found.rows[0].n, ids.length, 'every acknowledged write is there');
    assert.is((await c.query('SELECT count(*)::int AS n FROM attendance_records')).rows[0].n, seeded + ids.length);
    const parts = await partitionsOf(c);
    assert.is(parts.length, 2);
    assert.match(parts[0]!.name, new RegExp(`^${P}\\.attendance_records_before_\\d{4}_\\d{2}$`));
    assert.match(parts[0]!.bound, /^FOR VALUES FROM \(MINVALUE\) TO \('\d{4}-\d{2}-01'\)$/);
    assert.equal(parts[1], { name: `${P}.attendance_records_default`, bound: 'DEFAULT' });
    assert.equal(await countsDrift(c), [], 'the counts kept by triggers are exact through the swap');
    // The key holds the partition key; ids still come from the same sequence.
    const key = await c.query(
      "SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint WHERE conrelid = 'attendance_records'::regclass AND contype = 'p'",
    );
    assert.is(key.rows[0].d, 'PRIMARY KEY (id, date)');
    assert.is(
      (await c.query("SELECT pg_get_serial_sequence('attendance_records', 'id') AS s")).rows[0].s,
      'public.attendance_records_id_seq',
    );
  });
  // The reconcile markers came along: the declared indexes are as declared; only months are to make. The one view
  // to replace is student_risk_summary: migration latest-predictions-high, undone and redone with the conversion,
  // wrote its definition itself, over a latest_high made anew (another table to the engine's fingerprint, which
  // holds the query tree: table oids, and offsets into the query's text).
  const pending = await withClient(stack.owner(), (c) => planReconcile(c));
  const months = pending.filter((a) => a.kind === 'create-partition');
  assert.ok(months.length > 0, JSON.stringify(pending));
  assert.equal(
    pending.filter((a) => a.kind !== 'create-partition').map((a) => (a.kind === 'replace-view' ? a.view.name : a.kind)),
    ['student_risk_summary'],
  );
  const audit = await runJob('roles:audit', [], stack.env);
  assert.is(audit.code, 0, audit.stdout + audit.stderr);
});

test('apply keeps the months: made ahead, a row no month held moved into its own; rows only through the table', async () => {
  const steps = await reconcile(stack.owner());
  assert.ok(steps.length > 0 && steps.every((s) => s.status === 'done'), JSON.stringify(steps));
  assert.equal(await withClient(stack.owner(), (c) => planReconcile(c)), [], 'applied: nothing left to do');
  const today = (await su((c) => c.query("SELECT to_char(current_date, 'YYYY-MM-DD') AS d"))).rows[0].d as string;
  const months = (await su((c) => partitionsOf(c))).map((p) => p.name);
  assert.ok(
    months.includes(`${P}.attendance_records_${addMonths(today, 3).slice(0, 7).replace('-', '_')}`),
    months.join(),
  );

  // A far-future row: no month holds it yet, the default partition does.
  const student = (await su((c) => c.query('SELECT min(student_id) AS s FROM students'))).rows[0].s;
  await withClient(app(), (c) =>
    c.query("INSERT INTO attendance_records (student_id, date, status) VALUES ($1, '2031-05-03', 'absent')", [student]),
  );
  const where = () =>
    su(
      async (c) =>
        (await c.query("SELECT tableoid::regclass::text AS t FROM attendance_records WHERE date = '2031-05-03'")).rows,
    );
  assert.equal(await where(), [{ t: `${P}.attendance_records_default` }]);
  // The application reaches rows through the table only: the partitions' schema grants it nothing.
  await withClient(app(), async (c) => {
    for (const sql of [
      `SELECT count(*) FROM ${P}.attendance_records_default`,
      `DELETE FROM ${P}.attendance_records_default`,
    ]) {
      const err = await c.query(sql).catch((e) => e);
      assert.is(err.code, '42501', sql);
    }
  });
  // A grant on a partition would let rows past the table's triggers: the audit names it as drift.
  await su((c) => c.query(`GRANT SELECT ON ${P}.attendance_records_default TO app_user`));
  const drift = await runJob('roles:audit', [], stack.env);
  await su((c) => c.query(`REVOKE SELECT ON ${P}.attendance_records_default FROM app_user`));
  assert.is.not(drift.code, 0, 'a grant on a partition is drift');
  assert.match(drift.stdout + drift.stderr, /attendance_records_default/);
  const moved = await reconcile(stack.owner());
  assert.equal(
    moved.map((s) => [s.status, s.detail]),
    [['done', 'made, its rows moved from the default partition, attached']],
  );
  assert.equal(await where(), [{ t: `${P}.attendance_records_2031_05` }]);
  await su(async (c) => {
    assert.is((await c.query(`SELECT count(*)::int AS n FROM ${P}.attendance_records_default`)).rows[0].n, 0);
    assert.equal(await countsDrift(c), [], 'a moved row is counted once');
    // The new month has the parent's indexes, and they are valid.
    const idx = await c.query(
      `SELECT (SELECT count(*) FROM pg_index WHERE indrelid = 'attendance_records'::regclass)::int AS parent,
              (SELECT count(*) FROM pg_index WHERE indrelid = '${P}.attendance_records_2031_05'::regclass AND indisvalid)::int AS month`,
    );
    assert.is(idx.rows[0].month, idx.rows[0].parent);
  });
  const audit = await runJob('roles:audit', [], stack.env);
  assert.is(audit.code, 0, audit.stdout + audit.stderr);
  // The daily vacuum job keeps them too; here there is nothing left, and it analyzes the table as a whole.
  const vacuum = await runJob('vacuum', ['--json'], stack.env);
  assert.is(vacuum.code, 0, vacuum.stderr);
  const report = JSON.parse(vacuum.stdout);
  assert.equal(report.partitions, []);
  const parent = report.tables.find((t: { table: string }) => t.table === 'public.attendance_records');
  assert.ok(parent, 'the partitioned table is in the plan');
});

test('retention retires whole partitions past it, rows and all, and keeps the months after', async () => {
  const today = (await su((c) => c.query("SELECT to_char(current_date, 'YYYY-MM-DD') AS d"))).rows[0].d as string;
  const month = (n: number) => addMonths(today, n);
  await withClient(stack.owner(), async (c) => {
    await c.query(
      'CREATE TABLE public.retention_probe (id int NOT NULL, date date NOT NULL) PARTITION BY RANGE (date)',
    );
    for (const n of [-6, -5, -1])
      await c.query(
        `CREATE TABLE ${P}.retention_probe_${n + 10} PARTITION OF public.retention_probe FOR VALUES FROM ('${month(n)}') TO ('${month(n + 1)}')`,
      );
    await c.query(`INSERT INTO public.retention_probe SELECT g, $1::date + g % 20 FROM generate_series(1, 30) g`, [
      month(-6),
    ]);
    await c.query(`INSERT INTO public.retention_probe SELECT g, $1::date + g % 20 FROM generate_series(31, 40) g`, [
      month(-1),
    ]);
  });
  const declared = {
    ...projectDeclarations(),
    partitions: [
      {
        schema: 'public',
        table: 'retention_probe',
        column: 'date',
        partitionSchema: P,
        premadeMonths: 0,
        retainMonths: 3,
        purpose: 'test',
      },
    ],
  };
  try {
    const steps = await reconcile(stack.owner(), { declared });
    assert.equal(
      steps.map((s) => `${s.status} ${s.action.split(':')[0]}`),
      [
        `done + partition ${P}.retention_probe_${month(0).slice(0, 7).replace('-', '_')} of public.retention_probe for ${month(0)} .. ${month(1)} (the current month)`,
        `done - partition ${P}.retention_probe_4 of public.retention_probe`,
        `done - partition ${P}.retention_probe_5 of public.retention_probe`,
      ],
    );
    await su(async (c) => {
      assert.equal(
        (await c.query('SELECT min(id) AS lo, max(id) AS hi, count(*)::int AS n FROM public.retention_probe')).rows[0],
        { lo: 31, hi: 40, n: 10 },
      );
      assert.is((await c.query(`SELECT to_regclass('${P}.retention_probe_4') AS t`)).rows[0].t, null);
    });
    assert.equal(await reconcile(stack.owner(), { declared }), [], 'a second run has nothing to do');
  } finally {
    await withClient(stack.owner(), (c) => c.query('DROP TABLE public.retention_probe'));
  }
});

test('down makes one table again with every row; a conversion cut short before or after its swap completes when run again', async () => {
  const before = await su(
    async (c) => (await c.query('SELECT count(*)::int AS n, sum(id)::text AS s FROM attendance_records')).rows[0],
  );
  await migrate(stack.owner(), { direction: 'down', count: fromConversion().length });
  const plain = async () =>
    su(async (c) => ({
      kind: (await c.query("SELECT relkind FROM pg_class WHERE oid = 'attendance_records'::regclass")).rows[0].relkind,
      rows: (await c.query('SELECT count(*)::int AS n, sum(id)::text AS s FROM attendance_records')).rows[0],
      schema: (await c.query(`SELECT to_regnamespace('${P}')::text AS s`)).rows[0].s,
    }));
  assert.equal(await plain(), { kind: 'r', rows: before, schema: null });
  // The first steps, as a run cut short before the swap would leave them.
  await withClient(stack.owner(), async (c) => {
    await c.query(`CREATE SCHEMA ${P}`);
    for (const sql of [addBound(ATTENDANCE), validateBound(ATTENDANCE), createKeyIndex(ATTENDANCE)]) await c.query(sql);
  });
  assert.is((await plain()).kind, 'r');
  await migrate(stack.owner(), { direction: 'up' });
  const after = await plain();
  assert.equal([after.kind, after.rows], ['p', before]);
  await su(async (c) => assert.equal(await countsDrift(c), []));
  assert.ok((await reconcile(stack.owner())).every((s) => s.status === 'done'));
  assert.equal(await withClient(stack.owner(), (c) => planReconcile(c)), []);
  // Cut short after the swap, before node-pg-migrate recorded it (so nothing after it ran either): run again, it
  // has nothing left but the record.
  await migrate(stack.owner(), { direction: 'down', count: fromConversion().length - 1 });
  await su((c) => c.query('DELETE FROM edupulse_meta.pgmigrations WHERE name = $1', [CONVERSION]));
  const again = await migrate(stack.owner(), { direction: 'up' });
  assert.equal(
    again.map((m) => m.name),
    fromConversion(),
  );
  const recorded = await plain();
  assert.equal([recorded.kind, recorded.rows], ['p', before]);
});

test.run();
