// Least privilege, proven by connecting over TCP as each role with its password.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { declarations, type RoleDeclarations } from '../../roles/declarations.ts';
import { withClient, type PgConfig } from '../../ops-scripts/lib/db.ts';
import { applyRoles, auditRoles, type PasswordStore } from '../../roles/engine/index.ts';
import { readSecrets } from '../../ops-scripts/lib/secrets.ts';
import { run } from '../../ops-scripts/lib/run.ts';
import { runJob } from '../cli.ts';
import { logged, startTestStack, type TestStack } from '../harness.ts';

let stack: TestStack;

const as = (role: string, database = 'edupulse'): PgConfig => stack.login(role, database);

/** Runs `sql` as `role`; resolves to the SQLSTATE of the error, or 'ok'. */
async function outcome(role: string, sql: string): Promise<string> {
  try {
    await withClient(as(role), (c) => c.query(sql));
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message;
  }
}

/** A migration's DDL, run the way migrations run: as the migrator, SET ROLE to the owner. */
async function asOwner(sql: string): Promise<void> {
  await withClient(as(declarations.migrator), async (c) => {
    await c.query(`SET ROLE ${declarations.owner}`);
    await c.query(sql);
  });
}

const INSUFFICIENT = '42501';

test.before(
  logged(async () => {
    stack = await startTestStack();
    // The five tables come from the migrations `up` ran; a view and a table made later, as a migration would.
    await asOwner(`CREATE TABLE notes (id serial PRIMARY KEY, student_id varchar REFERENCES students, body text);
                 CREATE VIEW student_names AS SELECT student_id, first_name FROM students;`);
  }),
);
test.after(async () => {
  await stack?.stop();
});

test('the audit is clean after up', async () => {
  const r = await runJob('roles:audit', [], stack.env);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /as declared/);
});

const ROWS: Record<string, string> = {
  attendance_records: "(student_id, date, status) VALUES ('S1', '2026-01-05', 'present')",
  grades: "(student_id, course_id, grade_value) VALUES ('S1', 'MATH-9', 91)",
  discipline_incidents: "(student_id, incident_date, severity_level) VALUES ('S1', '2026-01-05', 2)",
  predictions: "(student_id, risk_score, risk_category, prediction_date) VALUES ('S1', 0.2, 'low', now())",
  notes: "(student_id, body) VALUES ('S1', 'hi')",
};

test('app_user reads and writes every table, and has no DDL, TRUNCATE, CREATE ROLE or pg_authid', async () => {
  assert.is(
    await outcome('app_user', "INSERT INTO students (student_id, first_name, last_name) VALUES ('S1', 'Ada', 'L')"),
    'ok',
  );
  for (const [table, row] of Object.entries(ROWS)) {
    assert.is(
      await outcome('app_user', `INSERT INTO ${table} ${row}`),
      'ok',
      `${table}: serial ids need USAGE on the sequence`,
    );
    assert.is(await outcome('app_user', `UPDATE ${table} SET student_id = 'S1'`), 'ok', table);
    assert.is(await outcome('app_user', `SELECT * FROM ${table}`), 'ok', table);
    assert.is(await outcome('app_user', `DELETE FROM ${table}`), 'ok', table);
  }
  assert.is(await outcome('app_user', "UPDATE students SET first_name = 'Ada L' WHERE student_id = 'S1'"), 'ok');
  assert.is(await outcome('app_user', 'CREATE TABLE evil (x int)'), INSUFFICIENT);
  assert.is(await outcome('app_user', 'ALTER TABLE students ADD COLUMN x int'), INSUFFICIENT);
  assert.is(await outcome('app_user', 'DROP TABLE notes'), INSUFFICIENT);
  assert.is(await outcome('app_user', 'TRUNCATE students CASCADE'), INSUFFICIENT);
  assert.is(await outcome('app_user', 'CREATE ROLE sneaky'), INSUFFICIENT);
  assert.is(await outcome('app_user', 'SELECT rolpassword FROM pg_authid'), INSUFFICIENT);
  assert.is(await outcome('app_user', 'CREATE SCHEMA mine'), INSUFFICIENT);
});

test('the reporting login reads every table and view and cannot write', async () => {
  for (const rel of ['students', ...Object.keys(ROWS), 'student_names'])
    assert.is(await outcome('reporting', `SELECT * FROM ${rel}`), 'ok', rel);
  assert.is(
    await outcome('reporting', "INSERT INTO students (student_id, first_name, last_name) VALUES ('S2', 'Bob', 'B')"),
    INSUFFICIENT,
  );
  assert.is(await outcome('reporting', "UPDATE students SET first_name = 'x'"), INSUFFICIENT);
  assert.is(await outcome('reporting', 'DELETE FROM students'), INSUFFICIENT);
  assert.is(await outcome('reporting', 'CREATE TABLE r (x int)'), INSUFFICIENT);
});

test('a table made by a later migration is covered with no grants re-run', async () => {
  await asOwner('CREATE TABLE later_table (id bigserial PRIMARY KEY, v text)');
  assert.is(await outcome('app_user', "INSERT INTO later_table (v) VALUES ('new')"), 'ok');
  assert.is(await outcome('reporting', 'SELECT * FROM later_table'), 'ok');
  assert.is(await outcome('reporting', "INSERT INTO later_table (v) VALUES ('no')"), INSUFFICIENT);
  assert.equal(await withClient(stack.pg, (c) => auditRoles(c)), []);
});

test('the backup login runs pg_basebackup and pg_dump', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edupulse-bb-'));
  const env = { PGPASSWORD: as('edupulse_backup').password as string };
  const common = ['-h', '127.0.0.1', '-p', String(stack.ctx.settings.postgres.port), '-U', 'edupulse_backup'];
  try {
    await run(
      stack.ctx.pg.bin('pg_basebackup'),
      [...common, '-D', join(dir, 'base'), '-Ft', '-X', 'fetch', '-c', 'fast'],
      { env },
    );
    assert.ok(statSync(join(dir, 'base', 'base.tar')).size > 0);
    const dump = await run(
      stack.ctx.pg.bin('pg_dump'),
      [...common, '-d', 'edupulse', '--data-only', '-t', 'students'],
      { env },
    );
    assert.match(dump.stdout, /S1\tAda L\tL/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the monitoring login sees other sessions' queries and cannot read table data", async () => {
  const busy = new pg.Client(as('app_user'));
  await busy.connect();
  const sleeping = busy.query('SELECT pg_sleep(3) /* busy-marker */');
  try {
    await new Promise((r) => setTimeout(r, 300));
    const seen = await withClient(as('edupulse_monitor'), async (c) =>
      (await c.query("SELECT query FROM pg_stat_activity WHERE usename = 'app_user'")).rows.map(
        (r) => r.query as string,
      ),
    );
    assert.ok(
      seen.some((q) => q.includes('busy-marker')),
      `monitor saw: ${JSON.stringify(seen)}`,
    );
    assert.is(await outcome('edupulse_monitor', 'SELECT * FROM public.students'), INSUFFICIENT);
  } finally {
    await busy.query('SELECT pg_cancel_backend(pg_backend_pid())').catch(() => {});
    await sleeping.catch(() => {});
    await busy.end();
  }
});

test('PUBLIC cannot connect to the database nor create in schema public', async () => {
  await withClient(stack.pg, (c) => c.query("CREATE ROLE stranger LOGIN PASSWORD 'stranger-pw'"));
  try {
    await withClient({ ...stack.pg, user: 'stranger', password: 'stranger-pw' }, async () => {});
    assert.unreachable('stranger must not connect');
  } catch (err) {
    assert.is((err as { code?: string }).code, INSUFFICIENT);
  } finally {
    await withClient(stack.pg, (c) => c.query('DROP ROLE stranger'));
  }
});

test('a wrong password is rejected over TCP', async () => {
  try {
    await withClient({ ...as('app_user'), password: 'not-the-password' }, async () => {});
    assert.unreachable('wrong password accepted');
  } catch (err) {
    assert.match((err as Error).message, /password authentication failed/);
  }
});

test('hand-made drift is reported by the audit, removed by roles:apply, and a second apply is a no-op', async () => {
  await withClient(stack.pg, async (c) => {
    await c.query('GRANT CREATE ON SCHEMA public TO app_user');
    await c.query('ALTER ROLE app_user SUPERUSER');
    await c.query('GRANT pg_write_all_data TO reporting');
    await c.query('REVOKE SELECT ON notes FROM readonly');
  });
  const audit = await runJob('roles:audit', ['--json'], stack.env);
  assert.is(audit.code, 1);
  const diffs = JSON.parse(audit.stdout).differences as Array<{ kind: string; role: string; what: string }>;
  const has = (kind: string, role: string, what: RegExp) =>
    diffs.some((d) => d.kind === kind && d.role === role && what.test(d.what));
  assert.ok(has('extra', 'app_user', /CREATE on schema public/), JSON.stringify(diffs));
  assert.ok(has('extra', 'app_user', /has SUPERUSER/));
  assert.ok(has('extra', 'reporting', /member of pg_write_all_data/));
  assert.ok(has('missing', 'readonly', /SELECT on table public.notes/));

  const apply = await runJob('roles:apply', [], stack.env);
  assert.is(apply.code, 0, apply.stderr);
  assert.is(await outcome('app_user', 'CREATE TABLE evil (x int)'), INSUFFICIENT);
  assert.is(
    await withClient(
      stack.pg,
      async (c) => (await c.query("SELECT rolsuper FROM pg_roles WHERE rolname = 'app_user'")).rows[0].rolsuper,
    ),
    false,
  );
  assert.is((await runJob('roles:audit', [], stack.env)).code, 0);
  const again = await runJob('roles:apply', ['--json'], stack.env);
  assert.equal(JSON.parse(again.stdout).statements, []);
});

test('an undeclared login role is reported by the audit; roles:apply leaves it unless told --drop-undeclared', async () => {
  await withClient(stack.pg, async (c) => {
    await c.query("CREATE ROLE intruder LOGIN PASSWORD 'intruder-pw'");
    await c.query('GRANT SELECT ON students TO intruder');
  });
  const audit = await runJob('roles:audit', ['--json'], stack.env);
  assert.is(audit.code, 1);
  const d = (JSON.parse(audit.stdout).differences as Array<{ role: string; what: string; fix: string }>).find(
    (x) => x.role === 'intruder',
  );
  assert.ok(d, audit.stdout);
  assert.match(d!.what, /undeclared login role with 1 privilege entries/);
  assert.is(d!.fix, 'DROP OWNED BY "intruder"; DROP ROLE "intruder"');
  const kept = await runJob('roles:apply', [], stack.env);
  assert.is(kept.code, 0, kept.stderr);
  assert.match(kept.stderr, /left in place \(give --drop-undeclared to drop\): intruder/);
  const exists = () =>
    withClient(
      stack.pg,
      async (c) => (await c.query("SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'intruder'")).rows[0].n,
    );
  assert.is(await exists(), 1, 'dropping a role is never implied');
  const dropped = await runJob('roles:apply', ['--drop-undeclared'], stack.env);
  assert.is(dropped.code, 0, dropped.stderr);
  assert.is(await exists(), 0);
  assert.is((await runJob('roles:audit', [], stack.env)).code, 0);
});

test('roles:rotate: the old password stops working, the new one works, the file stays 0600', async () => {
  const old = as('reporting').password;
  const r = await runJob('roles:rotate', ['reporting'], stack.env);
  assert.is(r.code, 0, r.stderr);
  const fresh = as('reporting').password;
  assert.is.not(fresh, old);
  assert.not.ok(r.stdout.includes(fresh as string) || r.stderr.includes(fresh as string));
  assert.is(await outcome('reporting', 'SELECT 1'), 'ok');
  try {
    await withClient({ ...as('reporting'), password: old }, async () => {});
    assert.unreachable('old password still works');
  } catch (err) {
    assert.match((err as Error).message, /password authentication failed/);
  }
  assert.is(statSync(stack.ctx.paths.secretsFile).mode & 0o777, 0o600);
  assert.is((await runJob('roles:rotate', ['no_such_role'], stack.env)).code, 2);
  // pg_stat_statements (readable by the monitor login) holds no verifier of the rotation.
  await withClient({ ...stack.pg, database: 'postgres' }, async (c) => {
    const { rows } = await c.query(
      "SELECT count(*)::int AS n FROM pg_stat_statements WHERE query ILIKE '%SCRAM-SHA-256%' OR query ILIKE '%ALTER ROLE%PASSWORD%'",
    );
    assert.is(rows[0].n, 0, 'no password statement tracked');
  });
});

test('a role name with a quote and a semicolon is quoted, not executed', async () => {
  const evil = '"; DROP TABLE students; --';
  const custom: RoleDeclarations = {
    ...declarations,
    roles: [
      ...declarations.roles,
      { name: evil, login: true, inherit: true, connectionLimit: 1, memberOf: ['readonly'], purpose: 'test' },
    ],
    grants: [...declarations.grants, { role: evil, on: 'database', privileges: ['CONNECT'] }],
  };
  const mem: Record<string, string> = {};
  const store: PasswordStore = {
    get: (role) => mem[role] ?? readSecrets(stack.ctx.paths.secretsFile)!.roles[role],
    save: (p) => Object.assign(mem, p),
  };
  await withClient(stack.pg, async (c) => {
    await applyRoles(c, store, custom);
    assert.is((await c.query('SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1', [evil])).rows[0].n, 1);
    assert.is((await c.query("SELECT to_regclass('public.students') IS NOT NULL AS ok")).rows[0].ok, true);
    assert.equal(await auditRoles(c, custom), []);
  });
  await withClient({ ...stack.pg, user: evil, password: mem[evil] }, async (c) => {
    assert.is((await c.query('SELECT current_user AS u')).rows[0].u, evil);
  });
});

test.run();
