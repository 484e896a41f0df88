// The reconcile engine against a real cluster: plan, apply, drift, invalid
// indexes, objects it did not create, and lock_timeout.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { withClient } from '../../ops-scripts/lib/db.ts';
import { planReconcile, reconcile, readObjects } from '../../views/engine/index.ts';
import { indexes, loadViews } from '../../views/index.ts';
import { seed } from '../../ops-scripts/lib/seed/load.ts';
import { runJob } from '../cli.ts';
import { logged, startTestStack, type TestStack } from '../harness.ts';

let stack: TestStack;
const owner = () => stack.owner();
const kinds = async () =>
  withClient(owner(), async (c) =>
    (await planReconcile(c)).map(
      (a) => `${a.kind} ${'view' in a ? a.view.name : 'name' in a ? a.name : 'decl' in a ? a.decl.name : a.object}`,
    ),
  );
const su = (sql: string) => withClient(stack.pg, (c) => c.query(sql));

test.before(
  logged(async () => {
    stack = await startTestStack();
    await seed(owner(), { seed: 'reconcile', students: 200, yearEnd: '2026-06-12' }, { existing: 'refuse' });
  }),
);
test.after(async () => {
  await stack?.stop();
});

test('up applied everything: plan is empty and exits 0', async () => {
  assert.equal(await kinds(), []);
  const r = await runJob('plan', [], stack.env);
  assert.is(r.code, 0, r.stderr);
});

test('on a fresh schema plan lists every object; apply makes them; plan is then empty; a second apply does nothing', async () => {
  // Remove every managed object: the engine drops only what it created.
  const removed = await reconcile(owner(), { declared: { indexes: [], views: [] } });
  assert.is(removed.length, indexes.length + loadViews().length);
  const listed = await runJob('plan', ['--json'], stack.env);
  assert.is(listed.code, 1);
  const actions = JSON.parse(listed.stdout).actions as Array<{ kind: string }>;
  assert.is(actions.filter((a) => a.kind === 'create-index').length, indexes.length);
  assert.is(actions.filter((a) => a.kind === 'create-view').length, loadViews().length);
  const applied = await runJob('apply', [], stack.env);
  assert.is(applied.code, 0, applied.stdout + applied.stderr);
  assert.equal(await kinds(), []);
  assert.equal(await reconcile(owner()), []);
  await withClient(stack.pg, async (c) => {
    const live = await readObjects(c);
    for (const d of indexes)
      assert.ok(
        live.indexes.some((i) => i.name === d.name && i.valid),
        d.name,
      );
  });
});

test('drift: a view changed by hand and an index dropped by hand show in plan and are fixed; a hand-made index is never dropped', async () => {
  await su(
    'CREATE OR REPLACE VIEW student_risk_summary AS SELECT s.student_id, s.first_name, s.last_name, l.risk_score, l.risk_category FROM students s JOIN edupulse_derived.latest_predictions l USING (student_id) WHERE l.risk_score > 0.5',
  );
  await su('DROP INDEX idx_grades_student_course');
  await su('CREATE INDEX my_own_index ON grades (semester)');
  assert.equal((await kinds()).sort(), ['create-index idx_grades_student_course', 'replace-view student_risk_summary']);
  const steps = await reconcile(owner());
  assert.ok(
    steps.every((s) => s.status === 'done'),
    JSON.stringify(steps),
  );
  assert.equal(await kinds(), []);
  await withClient(stack.pg, async (c) => {
    const def = (await c.query("SELECT pg_get_viewdef('student_risk_summary'::regclass) AS d")).rows[0].d as string;
    assert.not.match(def, /0\.5/);
    assert.is((await c.query("SELECT to_regclass('public.my_own_index') IS NOT NULL AS ok")).rows[0].ok, true);
  });
});

test('an invalid index left by a failed CREATE INDEX CONCURRENTLY is rebuilt', async () => {
  await su('DROP INDEX idx_students_grade_level');
  // Many students share a grade: a UNIQUE concurrent build fails and leaves an invalid index behind.
  try {
    await su('CREATE UNIQUE INDEX CONCURRENTLY idx_students_grade_level ON students (grade_level)');
    assert.unreachable('the unique build should fail');
  } catch (err) {
    assert.is((err as { code: string }).code, '23505');
  }
  assert.equal(await kinds(), ['rebuild-index idx_students_grade_level']);
  const steps = await reconcile(owner());
  assert.is(steps[0]!.status, 'done', JSON.stringify(steps));
  await withClient(stack.pg, async (c) => {
    const { rows } = await c.query(
      "SELECT i.indisvalid, i.indisunique FROM pg_index i WHERE i.indexrelid = 'idx_students_grade_level'::regclass",
    );
    assert.equal(rows, [{ indisvalid: true, indisunique: false }]);
    assert.is(
      (await c.query("SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'idx_students_grade_level%'")).rows[0]
        .n,
      1,
    );
  });
  assert.equal(await kinds(), []);
});

test('a declared name taken by an object edupulse-db did not create is a conflict, left alone', async () => {
  await su('DROP INDEX idx_predictions_risk_category');
  await su('CREATE INDEX idx_predictions_risk_category ON predictions (model_version)');
  assert.equal(await kinds(), ['conflict index public.idx_predictions_risk_category']);
  const r = await runJob('apply', [], stack.env);
  assert.is(r.code, 1);
  assert.match(r.stdout, /not created by edupulse-db/);
  const def = await withClient(
    stack.pg,
    async (c) =>
      (await c.query("SELECT pg_get_indexdef('idx_predictions_risk_category'::regclass) AS d")).rows[0].d as string,
  );
  assert.match(def, /model_version/);
  await su('DROP INDEX idx_predictions_risk_category');
  assert.ok((await reconcile(owner())).every((s) => s.status === 'done'));
});

test("apply under another session's lock fails within lock_timeout naming the table, and leaves nothing half-made", async () => {
  await su('DROP INDEX idx_grades_student_course');
  await su(
    'CREATE OR REPLACE VIEW student_attendance_concerns AS SELECT s.student_id, s.first_name, s.last_name, s.grade_level, 0::bigint AS absences_30d, 0::bigint AS tardies_30d, 0::bigint AS issues_30d FROM students s',
  );
  const holder = new pg.Client(stack.pg);
  await holder.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE grades, students IN ACCESS EXCLUSIVE MODE');
    const t0 = Date.now();
    const steps = await reconcile(owner(), { lockTimeout: '1s' });
    assert.ok(Date.now() - t0 < 8000, `took ${Date.now() - t0} ms`);
    const failed = steps.filter((s) => s.status === 'failed');
    assert.is(failed.length, 2, JSON.stringify(steps));
    assert.match(failed[0]!.detail!, /public\.grades/);
    assert.match(failed[0]!.detail!, /lock_timeout/);
    assert.match(failed[0]!.detail!, /AccessExclusiveLock/);
    assert.match(failed[1]!.detail!, /public\.students/);
  } finally {
    await holder.query('ROLLBACK');
    await holder.end();
  }
  await withClient(stack.pg, async (c) => {
    assert.is(
      (await c.query("SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'idx_grades_student_course%'")).rows[0]
        .n,
      0,
      'no invalid index left',
    );
    const def = (await c.query("SELECT pg_get_viewdef('student_attendance_concerns'::regclass) AS d")).rows[0]
      .d as string;
    assert.match(def, /\(?0\)?::bigint AS absences_30d/, 'the view is as it was, not half-replaced');
  });
  // With the lock released, the same apply succeeds.
  assert.ok((await reconcile(owner())).every((s) => s.status === 'done'));
  assert.equal(await kinds(), []);
});

test('roles audit stays clean: views made by the owner get the declared grants by default privileges', async () => {
  assert.is((await runJob('roles:audit', [], stack.env)).code, 0);
});

test('a declared index on a partitioned table: built partition by partition, valid, rebuilt on change, dropped', async () => {
  await withClient(owner(), async (c) => {
    await c.query(
      `CREATE TABLE public.scratch_by_month (id int, day date NOT NULL, note text) PARTITION BY RANGE (day)`,
    );
    await c.query(
      `CREATE TABLE public.scratch_2026_09 PARTITION OF public.scratch_by_month FOR VALUES FROM ('2026-09-01') TO ('2026-10-01')`,
    );
    await c.query(
      `CREATE TABLE public.scratch_2026_10 PARTITION OF public.scratch_by_month FOR VALUES FROM ('2026-10-01') TO ('2026-11-01')`,
    );
    await c.query(
      "INSERT INTO public.scratch_by_month SELECT g, DATE '2026-09-01' + (g % 60), 'n' FROM generate_series(1, 1000) g",
    );
  });
  const decl = {
    name: 'idx_scratch_day',
    schema: 'public',
    table: 'scratch_by_month',
    columns: ['day'],
    purpose: 'test',
  };
  const declared = (d: typeof decl & { where?: string }) => ({ indexes: [...indexes, d], views: loadViews() });
  const partitionIndexes = () =>
    withClient(
      stack.pg,
      async (c) =>
        (
          await c.query(`SELECT c.relname AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                        WHERE i.indrelid IN ('public.scratch_2026_09'::regclass, 'public.scratch_2026_10'::regclass) ORDER BY 1`)
        ).rows,
    );
  const steps = await reconcile(owner(), { declared: declared(decl) });
  assert.equal(
    steps.map((s) => s.status),
    ['done'],
    JSON.stringify(steps),
  );
  const parent = async () =>
    withClient(
      stack.pg,
      async (c) =>
        (
          await c.query(
            "SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass('public.idx_scratch_day')",
          )
        ).rows[0],
    );
  assert.equal(await parent(), { valid: true }, 'the parent index is valid once every partition is attached');
  assert.equal(await partitionIndexes(), [
    { name: 'idx_scratch_day__scratch_2026_09', valid: true },
    { name: 'idx_scratch_day__scratch_2026_10', valid: true },
  ]);
  assert.equal(await withClient(owner(), (c) => planReconcile(c, declared(decl))), [], 'as declared after apply');
  // A new partition gets the index from its parent, with no action of ours.
  await withClient(owner(), (c) =>
    c.query(
      `CREATE TABLE public.scratch_2026_11 PARTITION OF public.scratch_by_month FOR VALUES FROM ('2026-11-01') TO ('2026-12-01')`,
    ),
  );
  assert.equal(await withClient(owner(), (c) => planReconcile(c, declared(decl))), []);
  const changed = await reconcile(owner(), { declared: declared({ ...decl, where: "note = 'n'" }) });
  assert.equal(
    changed.map((s) => s.status),
    ['done'],
    JSON.stringify(changed),
  );
  assert.equal(await parent(), { valid: true });
  assert.equal(await withClient(owner(), (c) => planReconcile(c, declared({ ...decl, where: "note = 'n'" }))), []);
  const dropped = await reconcile(owner(), { declared: { indexes, views: loadViews() } });
  assert.equal(
    dropped.map((s) => s.status),
    ['done'],
    JSON.stringify(dropped),
  );
  assert.is(await parent(), undefined);
  assert.equal(await partitionIndexes(), [], "the partitions' indexes went with it");
  await withClient(owner(), (c) => c.query('DROP TABLE public.scratch_by_month'));
});

test.run();
