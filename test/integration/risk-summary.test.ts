// student_risk_summary against the documented definition (a correlated
// subquery on MAX(prediction_date)), and the latest-prediction table under
// concurrent writes, back-dated rows, updates, deletes and bulk COPY.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { withClient, type PgConfig } from '../../ops-scripts/lib/db.ts';
import { seed } from '../../ops-scripts/lib/seed/load.ts';
import { migrate } from '../../migrations/engine/migrate.ts';
import { reconcile } from '../../views/engine/index.ts';
import { Rng } from '../../ops-scripts/lib/seed/random.ts';
import { logged, startTestStack, type TestStack } from '../harness.ts';

let stack: TestStack;
const owner = () => stack.owner();
const app = (): PgConfig => stack.login('app_user');

const DOCUMENTED = `
  SELECT s.student_id, s.first_name, s.last_name, p.risk_score, p.risk_category
    FROM students s JOIN predictions p ON s.student_id = p.student_id
   WHERE p.prediction_date = (SELECT MAX(prediction_date) FROM predictions WHERE student_id = s.student_id)`;
/** The documented definition with our tie rule: among predictions at the latest date, the highest id. */
const DOCUMENTED_TIES_BROKEN = `${DOCUMENTED}
     AND p.id = (SELECT MAX(id) FROM predictions WHERE student_id = s.student_id AND prediction_date = p.prediction_date)`;
const OURS = 'SELECT student_id, first_name, last_name, risk_score, risk_category FROM student_risk_summary';

const rows = async (sql: string) =>
  withClient(stack.pg, async (c) => (await c.query(`${sql} ORDER BY 1, 4, 5`)).rows.map((r) => JSON.stringify(r)));

async function assertEquivalent(label: string): Promise<void> {
  const ours = await rows(OURS);
  assert.equal(
    ours,
    await rows(DOCUMENTED_TIES_BROKEN),
    `${label}: ours differs from the documented definition (ties broken by id)`,
  );
  const documented = new Set(await rows(DOCUMENTED));
  assert.ok(
    ours.every((r) => documented.has(r)),
    `${label}: every row of ours is a row of the documented definition`,
  );
  const derived = await withClient(
    stack.pg,
    async (c) =>
      (
        await c.query(`
    SELECT count(*)::int AS n FROM edupulse_derived.latest_predictions l
     WHERE l.prediction_id IS DISTINCT FROM (SELECT p.id FROM predictions p WHERE p.student_id = l.student_id
            ORDER BY p.prediction_date DESC, p.id DESC LIMIT 1)`)
      ).rows[0].n,
  );
  assert.is(derived, 0, `${label}: latest_predictions holds exactly the latest prediction of each student`);
  const copy =
    'SELECT student_id, prediction_id, prediction_date, risk_score, risk_category, first_name, last_name FROM edupulse_derived';
  assert.equal(
    await rows(`${copy}.latest_high`),
    await rows(`${copy}.latest_predictions WHERE risk_category IN ('high', 'critical')`),
    `${label}: latest_high holds exactly the high/critical rows of latest_predictions`,
  );
  const highList = " WHERE risk_category IN ('high', 'critical')";
  assert.equal(
    await rows(OURS + highList),
    await rows(`SELECT * FROM (${DOCUMENTED_TIES_BROKEN}) d${highList}`),
    `${label}: the high/critical list equals the documented definition's`,
  );
}

test.before(
  logged(async () => {
    stack = await startTestStack();
    await seed(owner(), { seed: 'summary', students: 400, yearEnd: '2026-06-12' }, { existing: 'refuse' });
  }),
);
test.after(async () => {
  await stack?.stop();
});

test('on generated data (bulk COPY through the triggers) ours equals the documented definition', async () => {
  await assertEquivalent('after seed');
  assert.is((await rows(OURS)).length, 400);
});

test('students without predictions are absent, as in the documented definition; ties give one row, the later insert', async () => {
  await withClient(app(), async (c) => {
    await c.query("INSERT INTO students (student_id, first_name, last_name) VALUES ('NOPRED', 'No', 'Prediction')");
    await c.query(`INSERT INTO predictions (student_id, risk_score, risk_category, prediction_date)
                   VALUES ('STU0000001', 0.91, 'critical', '2030-01-01T00:00:00Z'), ('STU0000001', 0.11, 'low', '2030-01-01T00:00:00Z')`);
  });
  assert.not.ok((await rows(OURS)).some((r) => r.includes('NOPRED')));
  const mine = (await rows(`${OURS} WHERE student_id = 'STU0000001'`)).map((r) => JSON.parse(r));
  assert.equal(
    mine.map((r) => r.risk_category),
    ['low'],
    'one row per student; the tie goes to the higher id',
  );
  assert.is(
    (await rows(`${DOCUMENTED} AND s.student_id = 'STU0000001'`)).length,
    2,
    'the documented definition returns both tied rows',
  );
  await assertEquivalent('with ties');
});

test('a back-dated prediction is not the latest; updates and deletes keep the table exact', async () => {
  await withClient(app(), async (c) => {
    await c.query(
      "INSERT INTO predictions (student_id, risk_score, risk_category, prediction_date) VALUES ('STU0000002', 0.99, 'critical', '2001-01-01')",
    );
    await assertEquivalent('back-dated insert');
    // Move the latest prediction of a student into the past: the previous one becomes latest.
    await c.query(
      `UPDATE predictions SET prediction_date = '1999-01-01' WHERE id = (SELECT id FROM predictions WHERE student_id = 'STU0000003' ORDER BY prediction_date DESC LIMIT 1)`,
    );
    await assertEquivalent('latest moved back');
    await c.query("UPDATE predictions SET risk_score = 0.5, risk_category = 'medium' WHERE student_id = 'STU0000004'");
    await assertEquivalent('scores changed');
    await c.query(
      "UPDATE predictions SET student_id = 'STU0000006' WHERE student_id = 'STU0000005' AND prediction_date > '2026-03-01'",
    );
    await assertEquivalent('moved to another student');
    await c.query(
      `DELETE FROM predictions WHERE id = (SELECT id FROM predictions WHERE student_id = 'STU0000007' ORDER BY prediction_date DESC LIMIT 1)`,
    );
    await assertEquivalent('latest deleted');
    await c.query("DELETE FROM predictions WHERE student_id = 'STU0000008'");
    await assertEquivalent("all of a student's deleted");
    assert.not.ok((await rows(OURS)).some((r) => r.includes('STU0000008')));
    await c.query("DELETE FROM students WHERE student_id = 'STU0000009'");
    await assertEquivalent('student deleted');
  });
});

test('concurrent inserts for the same students from several sessions, mixed with updates and deletes, stay exact', async () => {
  const students = Array.from({ length: 12 }, (_, i) => `STU${String(i + 20).padStart(7, '0')}`);
  const session = async (n: number) => {
    const rng = new Rng('concurrent', n);
    const client = new pg.Client(app());
    await client.connect();
    try {
      for (let i = 0; i < 40; i++) {
        const who = rng.pick(students);
        const when = new Date(Date.UTC(2026, 0, 1) + rng.int(0, 400) * 86_400_000).toISOString();
        const op = rng.next();
        await client.query('BEGIN');
        if (op < 0.7) {
          await client.query(
            `INSERT INTO predictions (student_id, risk_score, risk_category, prediction_date)
                              VALUES ($1, $2, 'medium', $3), ($1, $2, 'high', $3::timestamptz - interval '1 day')`,
            [who, rng.next(), when],
          );
        } else if (op < 0.85) {
          await client.query(
            `UPDATE predictions SET prediction_date = $2 WHERE id = (SELECT id FROM predictions WHERE student_id = $1 ORDER BY random() LIMIT 1)`,
            [who, when],
          );
        } else {
          await client.query(
            `DELETE FROM predictions WHERE id = (SELECT id FROM predictions WHERE student_id = $1 ORDER BY prediction_date DESC LIMIT 1)`,
            [who],
          );
        }
        await new Promise((r) => setTimeout(r, rng.int(0, 3)));
        await client.query('COMMIT');
      }
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      // Concurrent recomputes may deadlock; PostgreSQL aborts one, which is safe: the test checks what committed.
      if ((err as { code?: string }).code !== '40P01') throw err;
    } finally {
      await client.end();
    }
  };
  await Promise.all(Array.from({ length: 8 }, (_, n) => session(n)));
  await assertEquivalent('after concurrent sessions');
});

test("a renamed student shows renamed, also when the rename races the student's first prediction", async () => {
  await withClient(app(), (c) => c.query("UPDATE students SET first_name = 'Renamed' WHERE student_id = 'STU0000010'"));
  assert.equal(
    (await rows(`${OURS} WHERE student_id = 'STU0000010'`)).map((r) => JSON.parse(r).first_name),
    ['Renamed'],
  );
  await assertEquivalent('after a rename');
  for (const renameFirst of [false, true]) {
    const id = renameFirst ? 'RACE2' : 'RACE1';
    await withClient(app(), (c) =>
      c.query("INSERT INTO students (student_id, first_name, last_name) VALUES ($1, 'Old', 'Name')", [id]),
    );
    const a = new pg.Client(app());
    const b = new pg.Client(app());
    await a.connect();
    await b.connect();
    try {
      await a.query('BEGIN');
      await b.query('BEGIN');
      const insert = () =>
        a.query(
          "INSERT INTO predictions (student_id, risk_score, risk_category, prediction_date) VALUES ($1, 0.4, 'medium', now())",
          [id],
        );
      const rename = () => b.query("UPDATE students SET first_name = 'New' WHERE student_id = $1", [id]);
      // Whichever goes second waits on the other's lock on the student row; commit the first, then the second.
      const [first, second] = renameFirst ? [rename, insert] : [insert, rename];
      const [firstClient, secondClient] = renameFirst ? [b, a] : [a, b];
      await first();
      const waiting = second();
      await new Promise((r) => setTimeout(r, 200));
      await firstClient.query('COMMIT');
      await waiting;
      await secondClient.query('COMMIT');
    } finally {
      await a.end();
      await b.end();
    }
    assert.equal(
      (await rows(`${OURS} WHERE student_id = '${id}'`)).map((r) => JSON.parse(r).first_name),
      ['New'],
      `rename first: ${renameFirst}`,
    );
  }
  await assertEquivalent('after racing renames');
});

test('a nightly batch (one new prediction per student, applied in one statement) and a mixed batch keep it exact', async () => {
  await withClient(app(), async (c) => {
    // Every student with a prediction gets a newer one: the trigger's one-UPDATE path.
    const nightly = await c.query(
      `INSERT INTO predictions (student_id, risk_score, risk_category, prediction_date)
       SELECT student_id, 1 - risk_score, CASE WHEN risk_category = 'low' THEN 'high' ELSE 'low' END, '2031-01-01T02:00:00Z'
         FROM student_risk_summary`,
    );
    assert.ok((nightly.rowCount ?? 0) > 300);
    await assertEquivalent('nightly batch');
    assert.is((await rows(`${OURS} WHERE risk_category = 'high'`)).length > 0, true, 'categories moved with the batch');
    // One statement with a student twice (the later row first), a back-dated row, a student new to the table and
    // an ordinary newer row: the rows the UPDATE could not apply go through the rest of the trigger.
    const category = async (id: string) =>
      (await c.query('SELECT risk_category FROM student_risk_summary WHERE student_id = $1', [id])).rows[0]
        ?.risk_category;
    const backDated = await category('STU0000041');
    await c.query("INSERT INTO students (student_id, first_name, last_name) VALUES ('NEWINBATCH', 'New', 'Student')");
    await c.query(
      `INSERT INTO predictions (student_id, risk_score, risk_category, prediction_date) VALUES
         ('STU0000040', 0.95, 'critical', '2031-01-03T00:00:00Z'), ('STU0000040', 0.15, 'low', '2031-01-02T00:00:00Z'),
         ('STU0000041', 0.99, 'critical', '2020-01-01T00:00:00Z'),
         ('NEWINBATCH', 0.55, 'medium', '2031-01-02T00:00:00Z'),
         ('STU0000042', 0.75, 'high', '2031-01-02T00:00:00Z')`,
    );
    await assertEquivalent('mixed batch');
    assert.equal(
      [
        await category('STU0000040'),
        await category('STU0000041'),
        await category('NEWINBATCH'),
        await category('STU0000042'),
      ],
      ['critical', backDated, 'medium', 'high'],
      'the later of two rows, the back-dated row ignored, the new student, the newer row',
    );
  });
});

/** The tables a query of the view with this filter reads, by its plan. */
const reads = async (where: string) =>
  withClient(stack.pg, async (c) => {
    const plan = (await c.query(`EXPLAIN (FORMAT JSON) ${OURS} WHERE ${where}`)).rows[0]['QUERY PLAN'];
    return [...JSON.stringify(plan).matchAll(/"Relation Name":"(\w+)"/g)].map((m) => m[1]).sort();
  });

test('a high/critical list reads latest_high alone, a list of another category latest_predictions alone', async () => {
  assert.equal(await reads("risk_category IN ('high', 'critical')"), ['latest_high']);
  assert.equal(await reads("risk_category = 'critical'"), ['latest_high']);
  assert.equal(await reads("risk_category = 'low'"), ['latest_predictions']);
  assert.equal(await reads("student_id = 'STU0000001'"), ['latest_high', 'latest_predictions']);
});

test('a student deleted (predictions cascading) leaves neither table', async () => {
  const id = (await rows(`${OURS} WHERE risk_category IN ('high', 'critical')`)).map(
    (r) => JSON.parse(r).student_id,
  )[0];
  assert.ok(id, 'a student on the high/critical list');
  await withClient(owner(), (c) => c.query('DELETE FROM students WHERE student_id = $1', [id]));
  assert.equal(await rows(`${OURS} WHERE student_id = '${id}'`), []);
  await assertEquivalent('after a student deleted');
});

test('a second bulk COPY load (appending students) keeps it exact', async () => {
  await seed(owner(), { seed: 'summary-more', students: 200, yearEnd: '2026-11-20' }, { existing: 'append' });
  await assertEquivalent('after append');
});

test('migration latest-predictions-high undone and redone on data: the view reads one table, then both, exact each way', async () => {
  const undone = await migrate(owner(), { direction: 'down', count: 1 });
  assert.equal(
    undone.map((m) => m.name),
    ['1764028800013_latest-predictions-high'],
  );
  assert.is(
    await withClient(
      stack.pg,
      async (c) => (await c.query("SELECT to_regclass('edupulse_derived.latest_high') AS t")).rows[0].t,
    ),
    null,
  );
  // The view as it was before the migration: every row from latest_predictions.
  assert.equal(await reads("risk_category IN ('high', 'critical')"), ['latest_predictions']);
  assert.equal(await rows(OURS), await rows(DOCUMENTED_TIES_BROKEN), 'undone: ours equals the documented definition');
  await withClient(app(), (c) =>
    c.query(`INSERT INTO predictions (student_id, risk_score, risk_category, prediction_date)
             SELECT student_id, 0.97, 'critical', '2032-01-01T00:00:00Z' FROM students ORDER BY student_id LIMIT 25`),
  );
  await migrate(owner(), { direction: 'up' });
  // Before any apply: the migration put the view over the copy back itself.
  assert.equal(await reads("risk_category IN ('high', 'critical')"), ['latest_high']);
  assert.ok((await reconcile(owner())).every((s) => s.status === 'done'));
  await assertEquivalent('redone on data');
});

test('a TRUNCATE of predictions empties both tables', async () => {
  await withClient(owner(), (c) => c.query('TRUNCATE predictions'));
  await assertEquivalent('after TRUNCATE');
  assert.equal(await rows(OURS), []);
});

test.run();
