// The schema as migrated onto a real cluster: round trip, columns, constraints,
// the documented usage patterns, lock_timeout, and both ways of running it.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { declarations } from '../../roles/declarations.ts';
import { withClient, type PgConfig } from '../../ops-scripts/lib/db.ts';
import { appliedMigrations, migrate, migrationNames, MIGRATIONS_DIR } from '../../migrations/engine/migrate.ts';
import { lintMigrations, RULES } from '../../ops-scripts/lib/migration-lint.ts';
import { run } from '../../ops-scripts/lib/run.ts';
import { PROJECT_ROOT } from '../../ops-scripts/lib/state.ts';
import { ToolkitError } from '../../ops-scripts/lib/errors.ts';
import { reconcile } from '../../views/engine/index.ts';
import { runJob } from '../cli.ts';
import { logged, startTestStack, type TestStack } from '../harness.ts';

let stack: TestStack;
const migrator = (lockTimeout?: string) => stack.owner({ lockTimeout });
const app = (): PgConfig => stack.login('app_user');

test.before(
  logged(async () => {
    stack = await startTestStack();
  }),
);
test.after(async () => {
  await stack?.stop();
});

const EXPECTED: Record<string, Array<[string, string, number | null]>> = {
  students: [
    ['student_id', 'character varying', null],
    ['first_name', 'character varying', null],
    ['last_name', 'character varying', null],
    ['grade_level', 'integer', null],
    ['enrollment_date', 'date', null],
    ['date_of_birth', 'date', null],
    ['gender', 'character varying', 10],
    ['ethnicity', 'character varying', 50],
    ['special_ed_status', 'boolean', null],
    ['english_learner_status', 'boolean', null],
    ['socioeconomic_status', 'character varying', 20],
    ['created_at', 'timestamp with time zone', null],
    ['updated_at', 'timestamp with time zone', null],
  ],
  attendance_records: [
    ['id', 'integer', null],
    ['student_id', 'character varying', null],
    ['date', 'date', null],
    ['status', 'character varying', 20],
    ['period', 'integer', null],
    ['minutes_late', 'integer', null],
    ['reason', 'character varying', 255],
    ['created_at', 'timestamp with time zone', null],
  ],
  grades: [
    ['id', 'integer', null],
    ['student_id', 'character varying', null],
    ['course_id', 'character varying', null],
    ['assignment_id', 'character varying', null],
    ['assignment_type', 'character varying', 50],
    ['grade_value', 'double precision', null],
    ['max_grade_value', 'double precision', null],
    ['submission_date', 'date', null],
    ['semester', 'character varying', 20],
    ['academic_year', 'character varying', 10],
    ['created_at', 'timestamp with time zone', null],
  ],
  discipline_incidents: [
    ['id', 'integer', null],
    ['student_id', 'character varying', null],
    ['incident_date', 'date', null],
    ['incident_type', 'character varying', 50],
    ['severity_level', 'integer', null],
    ['description', 'text', null],
    ['action_taken', 'character varying', 255],
    ['reported_by', 'character varying', 100],
    ['created_at', 'timestamp with time zone', null],
  ],
  predictions: [
    ['id', 'integer', null],
    ['student_id', 'character varying', null],
    ['risk_score', 'double precision', null],
    ['risk_category', 'character varying', 20],
    ['confidence', 'double precision', null],
    ['risk_factors', 'jsonb', null],
    ['model_version', 'character varying', 50],
    ['prediction_date', 'timestamp with time zone', null],
    ['created_at', 'timestamp with time zone', null],
  ],
};

async function columns(): Promise<Record<string, Array<[string, string, number | null]>>> {
  return withClient(stack.pg, async (c) => {
    const { rows } = await c.query(`SELECT table_name, column_name, data_type, character_maximum_length
      FROM information_schema.columns JOIN information_schema.tables USING (table_schema, table_name)
     WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name, ordinal_position`);
    const out: Record<string, Array<[string, string, number | null]>> = {};
    for (const r of rows) (out[r.table_name] ??= []).push([r.column_name, r.data_type, r.character_maximum_length]);
    return out;
  });
}

test('up applied every migration; columns and types match the data model', async () => {
  assert.equal(await appliedMigrations(migrator()), migrationNames());
  assert.equal(await columns(), EXPECTED);
  await withClient(stack.pg, async (c) => {
    const { rows } = await c.query(`SELECT c.relname, pg_get_userbyid(c.relowner) AS owner FROM pg_class c
      WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'`);
    assert.ok(
      rows.every((r) => r.owner === declarations.owner),
      JSON.stringify(rows),
    );
  });
});

test('migrations round-trip: down to zero, then up again', async () => {
  // The managed views read the tables; as in a real teardown, they go first (and come back with apply).
  assert.ok((await reconcile(migrator(), { declared: { indexes: [], views: [] } })).every((s) => s.status === 'done'));
  const down = await migrate(migrator(), { direction: 'down', count: Infinity });
  assert.is(down.length, migrationNames().length);
  assert.equal(await columns(), {});
  assert.equal(await appliedMigrations(migrator()), []);
  const up = await migrate(migrator(), { direction: 'up' });
  assert.equal(
    up.map((m) => m.name),
    migrationNames(),
  );
  assert.equal(await columns(), EXPECTED);
  assert.equal(await migrate(migrator(), { direction: 'up' }), [], 'nothing left to apply');
  assert.ok((await reconcile(migrator())).every((s) => s.status === 'done'));
});

const violation = async (sql: string): Promise<string> => {
  try {
    await withClient(app(), (c) => c.query(sql));
    return 'accepted';
  } catch (err) {
    return (err as { code: string }).code;
  }
};

test('constraint violations are rejected', async () => {
  await withClient(app(), (c) =>
    c.query("INSERT INTO students (student_id, first_name, last_name) VALUES ('C1', 'Cy', 'Check')"),
  );
  assert.is(
    await violation("INSERT INTO attendance_records (student_id, date, status) VALUES ('C1', '2026-01-05', 'asleep')"),
    '23514',
  );
  assert.is(
    await violation(
      "INSERT INTO discipline_incidents (student_id, incident_date, severity_level) VALUES ('C1', '2026-01-05', 6)",
    ),
    '23514',
  );
  assert.is(
    await violation("INSERT INTO predictions (student_id, risk_score, prediction_date) VALUES ('C1', 1.5, now())"),
    '23514',
  );
  assert.is(
    await violation(
      "INSERT INTO attendance_records (student_id, date, status, minutes_late) VALUES ('C1', '2026-01-05', 'tardy', -3)",
    ),
    '23514',
  );
  assert.is(
    await violation("INSERT INTO grades (student_id, course_id, grade_value) VALUES ('NOPE', 'MATH', 90)"),
    '23503',
  );
  assert.is(
    await violation(
      "INSERT INTO predictions (student_id, risk_score, risk_category, prediction_date) VALUES ('C1', 0.5, 'extreme', now())",
    ),
    '23514',
  );
  assert.is(
    await violation(
      "INSERT INTO grades (student_id, course_id, grade_value, assignment_type) VALUES ('C1', 'MATH', 90, 'essay')",
    ),
    '23514',
  );
});

test('the documented usage patterns work, as app_user', async () => {
  await withClient(app(), async (c) => {
    await c.query(
      "INSERT INTO students (student_id, first_name, last_name, grade_level) VALUES ('STU001', 'John', 'Doe', 10), ('STU002', 'Ann', 'Lee', 11)",
    );
    await c.query(`INSERT INTO predictions (student_id, risk_score, risk_category, confidence, risk_factors, model_version, prediction_date)
                   VALUES ('STU001', 0.82, 'high', 0.9, '{"attendance": 0.6}', 'v1', now()), ('STU002', 0.1, 'low', 0.8, NULL, 'v1', now())`);
    const atRisk = await c.query(`SELECT DISTINCT s.* FROM students s JOIN predictions p ON p.student_id = s.student_id
                                   WHERE p.risk_category IN ('high', 'critical')`);
    assert.equal(
      atRisk.rows.map((r) => r.student_id),
      ['STU001'],
    );
    // Bulk insert of attendance rows, as bulk_insert_mappings does: one multi-row INSERT.
    const days = Array.from({ length: 8 }, (_, i) => i + 1);
    const values = days.map((_, i) => `($${i * 3 + 1}, $${i * 3 + 2}, $${i * 3 + 3})`).join(', ');
    const params = days.flatMap((d) => [
      'STU001',
      new Date(Date.now() - d * 86_400_000).toISOString().slice(0, 10),
      d % 2 ? 'absent' : 'tardy',
    ]);
    await c.query(`INSERT INTO attendance_records (student_id, date, status) VALUES ${values}`, params);
    await c.query(
      "INSERT INTO attendance_records (student_id, date, status) VALUES ('STU002', current_date, 'absent'), ('STU002', current_date - 40, 'absent')",
    );
    const issues =
      await c.query(`SELECT s.student_id FROM students s JOIN attendance_records a ON a.student_id = s.student_id
                                   WHERE a.date >= current_date - 30 AND a.status IN ('absent', 'tardy')
                                   GROUP BY s.student_id HAVING count(a.id) > 5`);
    assert.equal(
      issues.rows.map((r) => r.student_id),
      ['STU001'],
    );
  });
});

test('an ORM that sends every mapped column (explicit NULLs for the defaults) works as app_user; the stored values are not NULL', async () => {
  // What SQLAlchemy sends for the documented models: every column, NULL where the Python object has no value.
  await withClient(app(), async (c) => {
    await c.query(
      `INSERT INTO students (student_id, first_name, last_name, grade_level, enrollment_date, date_of_birth, gender, ethnicity,
                     special_ed_status, english_learner_status, socioeconomic_status, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
      ['STU-ORM', 'John', 'Doe', 10],
    );
    await c.query(`INSERT INTO attendance_records (student_id, date, status, period, minutes_late, reason, created_at)
                   VALUES ('STU-ORM', current_date, 'tardy', NULL, NULL, NULL, NULL)`);
    await c.query(`INSERT INTO grades (student_id, course_id, assignment_id, assignment_type, grade_value, max_grade_value, submission_date, semester, academic_year, created_at)
                   VALUES ('STU-ORM', 'MATH', NULL, NULL, 91, 100, NULL, NULL, NULL, NULL)`);
    await c.query(`INSERT INTO discipline_incidents (student_id, incident_date, incident_type, severity_level, description, action_taken, reported_by, created_at)
                   VALUES ('STU-ORM', current_date, 'tardiness', 1, NULL, NULL, NULL, NULL)`);
    await c.query(`INSERT INTO predictions (student_id, risk_score, risk_category, confidence, risk_factors, model_version, prediction_date, created_at)
                   VALUES ('STU-ORM', 0.3, 'low', NULL, NULL, NULL, now(), NULL)`);
    const { rows } =
      await c.query(`SELECT s.created_at IS NOT NULL AND s.updated_at IS NOT NULL AS student, a.minutes_late, a.created_at IS NOT NULL AS attendance,
        (SELECT created_at IS NOT NULL FROM grades WHERE student_id = 'STU-ORM') AS grade,
        (SELECT created_at IS NOT NULL FROM discipline_incidents WHERE student_id = 'STU-ORM') AS incident,
        (SELECT created_at IS NOT NULL FROM predictions WHERE student_id = 'STU-ORM') AS prediction
      FROM students s JOIN attendance_records a USING (student_id) WHERE s.student_id = 'STU-ORM'`);
    assert.equal(rows[0], {
      student: true,
      minutes_late: 0,
      attendance: true,
      grade: true,
      incident: true,
      prediction: true,
    });
    await c.query("DELETE FROM students WHERE student_id = 'STU-ORM'");
  });
});

test('updated_at follows updates; a removed student takes their records along', async () => {
  await withClient(app(), async (c) => {
    const before = (await c.query("SELECT updated_at FROM students WHERE student_id = 'STU001'")).rows[0]
      .updated_at as Date;
    await c.query("UPDATE students SET grade_level = 11 WHERE student_id = 'STU001'");
    const after = (await c.query("SELECT updated_at FROM students WHERE student_id = 'STU001'")).rows[0]
      .updated_at as Date;
    assert.ok(after > before);
    await c.query("DELETE FROM students WHERE student_id = 'STU001'");
    const left = await c.query(
      "SELECT (SELECT count(*) FROM attendance_records WHERE student_id = 'STU001') + (SELECT count(*) FROM predictions WHERE student_id = 'STU001') AS n",
    );
    assert.is(Number(left.rows[0].n), 0);
  });
});

test('a migration blocked by a busy table fails within lock_timeout, clearly, and changes nothing', async () => {
  // Beside migrations/ in the project, so a migration's imports (views/engine) resolve as they do from there.
  const dir = mkdtempSync(join(PROJECT_ROOT, '.migrations-test-'));
  cpSync(MIGRATIONS_DIR, dir, { recursive: true });
  writeFileSync(
    join(dir, '1999999999999_add-nickname.ts'),
    "export async function up(pgm: any) { pgm.addColumns('students', { nickname: { type: 'varchar' } }); }\nexport async function down(pgm: any) { pgm.dropColumns('students', ['nickname']); }\n",
  );
  const holder = new pg.Client(stack.pg);
  await holder.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE students IN ACCESS SHARE MODE');
    const t0 = Date.now();
    try {
      await migrate(migrator('1s'), { direction: 'up', dir });
      assert.unreachable('the migration must not wait forever');
    } catch (err) {
      assert.instance(err, ToolkitError);
      assert.match((err as Error).message, /lock_timeout/, (err as Error).message);
      assert.match((err as Error).message, /55P03/);
    }
    assert.ok(Date.now() - t0 < 10_000, `failed after ${Date.now() - t0} ms`);
  } finally {
    await holder.query('ROLLBACK');
    await holder.end();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(await appliedMigrations(migrator()), migrationNames());
  assert.equal(await columns(), EXPECTED);
});

test("npm run migrate and node-pg-migrate's own CLI run the same migrations", async () => {
  const status = await runJob('migrate', ['status', '--json'], stack.env);
  assert.is(status.code, 0, status.stderr);
  assert.ok(JSON.parse(status.stdout).migrations.every((m: { applied: boolean }) => m.applied));
  // Back to before attendance_window (migration attendance-issue-counts) and everything after it.
  const undone = migrationNames().length - migrationNames().indexOf('1764028800009_attendance-issue-counts');
  const down = await runJob('migrate', ['down', String(undone)], stack.env);
  assert.is(down.code, 0, down.stderr);
  assert.is((await appliedMigrations(migrator())).length, migrationNames().length - undone);
  // --dry-run prints the SQL node-pg-migrate would run, and runs none of it.
  const dry = await runJob('migrate', ['up', '--dry-run'], stack.env);
  assert.is(dry.code, 0, dry.stderr);
  const last = migrationNames().at(-1)!;
  assert.match(dry.stdout, new RegExp(`-- up ${last} \\(dry run: not applied\\)`));
  assert.match(dry.stdout, /CREATE TABLE "edupulse_derived"\."attendance_window"/);
  assert.match(
    dry.stdout,
    new RegExp(`INSERT INTO "edupulse_meta"\\."pgmigrations" \\(name, run_on\\) VALUES \\('${last}'`),
  );
  assert.is(
    (await appliedMigrations(migrator())).length,
    migrationNames().length - undone,
    'nothing applied by the dry run',
  );
  const cli = await run(
    join(PROJECT_ROOT, 'node_modules/.bin/node-pg-migrate'),
    ['up', '--config-file', 'pgmigrate.config.ts'],
    { cwd: PROJECT_ROOT, env: { ...stack.env, DATABASE_URL: undefined }, nothrow: true },
  );
  assert.is(cli.code, 0, cli.stdout + cli.stderr);
  assert.equal(await appliedMigrations(migrator()), migrationNames());
  const redo = await runJob('migrate', ['redo'], stack.env);
  assert.is(redo.code, 0, redo.stderr);
  assert.is((await runJob('migrate', ['sideways'], stack.env)).code, 2);
  assert.is((await runJob('migrate', ['down', '-1'], stack.env)).code, 2);
});

test('migrate down or redo that would drop tables holding rows is refused (exit 3), naming them, and changes nothing', async () => {
  await withClient(app(), (c) =>
    c.query(
      "INSERT INTO students (student_id, first_name, last_name, grade_level) VALUES ('STU900', 'Kept', 'Row', 9)",
    ),
  );
  try {
    const applied = await appliedMigrations(migrator());
    for (const args of [
      ['down', 'all'],
      ['redo', String(migrationNames().length)],
    ]) {
      const r = await runJob('migrate', args, stack.env);
      assert.is(r.code, 3, `migrate ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /would destroy data: .*table public\.students \([\d,]+ rows?\)/);
      assert.match(r.stderr, /--force/);
      assert.equal(await appliedMigrations(migrator()), applied, 'no migration reverted');
    }
    const kept = await withClient(app(), (c) => c.query("SELECT 1 FROM students WHERE student_id = 'STU900'"));
    assert.is(kept.rowCount, 1, 'the row is still there');
    // A redo has no dry run (its up needs its down to have run): refused as bad input, nothing run.
    const dry = await runJob('migrate', ['redo', '--dry-run'], stack.env);
    assert.is(dry.code, 2, dry.stderr);
    assert.equal(await appliedMigrations(migrator()), applied);
  } finally {
    await withClient(app(), (c) => c.query("DELETE FROM students WHERE student_id = 'STU900'"));
  }
});

test('migrate:lint passes the real migrations and flags every rule in the bad fixture', async () => {
  const real = await lintMigrations(MIGRATIONS_DIR);
  assert.equal(
    real.filter((f) => !f.allowed),
    [],
  );
  const bad = await lintMigrations(join(PROJECT_ROOT, 'test/fixtures/bad-migrations'));
  const flagged = new Set(bad.filter((f) => !f.allowed).map((f) => f.rule));
  assert.equal(
    [...flagged].sort(),
    Object.keys(RULES)
      .filter((r) => r !== 'ban-drop-table')
      .sort(),
  );
  assert.ok(
    bad.some((f) => f.rule === 'ban-drop-table' && f.allowed),
    'the reviewed exception is honoured',
  );
  assert.not.ok(
    bad.some((f) => /"courses"|model_version|nickname|VALIDATE|NOT VALID/.test(f.statement)),
    'safe forms are not flagged',
  );
  const r = await runJob('migrate:lint', ['test/fixtures/bad-migrations'], {});
  assert.is(r.code, 1);
  assert.is((await runJob('migrate:lint', [], {})).code, 0);
});

test.run();
