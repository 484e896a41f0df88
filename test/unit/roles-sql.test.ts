// The pure part of roles: SQL text by exact string, and the diff in both directions.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { declarations } from '../../roles/declarations.ts';
import type { CatalogSnapshot } from '../../roles/engine/catalog.ts';
import { diffRoles } from '../../roles/engine/diff.ts';
import * as sql from '../../roles/engine/sql.ts';
import { scramVerifier, verifierMatches } from '../../roles/engine/scram.ts';

const appUser = declarations.roles.find((r) => r.name === 'app_user')!;

test('role statements carry every attribute, so ALTER takes back what was added', () => {
  assert.is(
    sql.createRole(appUser),
    'CREATE ROLE "app_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 50',
  );
  assert.is(sql.createRole.reverse(appUser), 'DROP ROLE "app_user"');
  assert.is(
    sql.alterRole({ ...appUser, name: 'edupulse_backup', replication: true, connectionLimit: 5 }),
    'ALTER ROLE "edupulse_backup" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT REPLICATION NOBYPASSRLS CONNECTION LIMIT 5',
  );
});

test('grants, revokes and default privileges, each with its reverse', () => {
  const t = {
    kind: 'table' as const,
    schema: 'public',
    name: 'students',
    role: 'app_user',
    privileges: ['SELECT', 'INSERT'],
  };
  assert.is(sql.grant(t), 'GRANT SELECT, INSERT ON TABLE "public"."students" TO "app_user"');
  assert.is(sql.grant.reverse(t), 'REVOKE SELECT, INSERT ON TABLE "public"."students" FROM "app_user"');
  assert.is(
    sql.revoke({
      kind: 'database',
      schema: '',
      name: 'edupulse',
      role: 'PUBLIC',
      privileges: ['CONNECT', 'TEMPORARY'],
    }),
    'REVOKE CONNECT, TEMPORARY ON DATABASE "edupulse" FROM PUBLIC',
  );
  const d = {
    owner: 'edupulse_owner',
    schema: 'public',
    on: 'sequence' as const,
    role: 'app_user',
    privileges: ['USAGE', 'SELECT'],
  };
  assert.is(
    sql.grantDefault(d),
    'ALTER DEFAULT PRIVILEGES FOR ROLE "edupulse_owner" IN SCHEMA "public" GRANT USAGE, SELECT ON SEQUENCES TO "app_user"',
  );
  assert.is(
    sql.grantDefault.reverse(d),
    'ALTER DEFAULT PRIVILEGES FOR ROLE "edupulse_owner" IN SCHEMA "public" REVOKE USAGE, SELECT ON SEQUENCES FROM "app_user"',
  );
  assert.is(sql.grantMembership('readonly', 'reporting'), 'GRANT "readonly" TO "reporting"');
  assert.is(sql.grantMembership.reverse('readonly', 'reporting'), 'REVOKE "readonly" FROM "reporting"');
});

test('identifiers with quotes and semicolons stay identifiers', () => {
  assert.is(sql.dropRole('"; DROP TABLE students; --'), 'DROP ROLE """; DROP TABLE students; --"');
  assert.is(sql.setPasswordVerifier("o'brien", "SCRAM'x"), `ALTER ROLE "o'brien" PASSWORD 'SCRAM''x'`);
});

const empty: CatalogSnapshot = {
  database: 'edupulse',
  databaseOwner: 'postgres',
  schemas: ['public'],
  roles: [],
  memberships: [],
  relations: [{ schema: 'public', name: 'students', kind: 'table' }],
  acl: [
    { kind: 'database', schema: '', name: 'edupulse', grantee: 'PUBLIC', privilege: 'CONNECT' },
    { kind: 'schema', schema: 'public', name: 'public', grantee: 'PUBLIC', privilege: 'USAGE' },
  ],
  defaultAcl: [],
  undeclared: [],
};

test("on an empty cluster the diff creates everything, then takes PUBLIC's defaults away", () => {
  const fixes = diffRoles(declarations, empty).map((d) => d.fix);
  assert.is(fixes[0], sql.createRole(declarations.roles[0]!));
  assert.ok(fixes.includes('ALTER DATABASE "edupulse" OWNER TO "edupulse_owner"'));
  assert.ok(fixes.includes('GRANT "edupulse_owner" TO "edupulse_migrator"'));
  assert.ok(fixes.includes('GRANT "pg_read_all_data" TO "edupulse_backup"'));
  assert.ok(fixes.includes('REVOKE CONNECT ON DATABASE "edupulse" FROM PUBLIC'));
  assert.ok(fixes.includes('REVOKE USAGE ON SCHEMA "public" FROM PUBLIC'));
  assert.ok(fixes.includes('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE "public"."students" TO "app_user"'));
  assert.ok(
    fixes.includes(
      'ALTER DEFAULT PRIVILEGES FOR ROLE "edupulse_owner" IN SCHEMA "public" GRANT SELECT ON TABLES TO "readonly"',
    ),
  );
  // Creation comes before anything that names the roles.
  const lastCreate = Math.max(...fixes.map((f, i) => (f.startsWith('CREATE ROLE') ? i : -1)));
  assert.ok(fixes.slice(0, lastCreate + 1).every((f) => f.startsWith('CREATE ROLE')));
});

test('extras are reported as extra, with the revoke that removes them', () => {
  const snap: CatalogSnapshot = {
    ...empty,
    roles: [
      {
        name: 'app_user',
        superuser: true,
        inherit: true,
        createrole: false,
        createdb: false,
        login: true,
        replication: false,
        bypassrls: false,
        connlimit: -1,
      },
    ],
    memberships: [{ member: 'app_user', role: 'pg_write_server_files' }],
    acl: [
      { kind: 'schema', schema: 'public', name: 'public', grantee: 'app_user', privilege: 'CREATE' },
      { kind: 'table', schema: 'public', name: 'students', grantee: 'app_user', privilege: 'TRUNCATE' },
    ],
  };
  const extra = diffRoles(declarations, snap)
    .filter((d) => d.kind === 'extra' && d.role === 'app_user')
    .map((d) => `${d.what} | ${d.fix}`);
  assert.equal(extra, [
    `has SUPERUSER | ${sql.alterRole(appUser)}`,
    `connection limit -1, declared 50 | ${sql.alterRole(appUser)}`,
    'member of pg_write_server_files | REVOKE "pg_write_server_files" FROM "app_user"',
    'CREATE on schema public | REVOKE CREATE ON SCHEMA "public" FROM "app_user"',
    'TRUNCATE on table public.students | REVOKE TRUNCATE ON TABLE "public"."students" FROM "app_user"',
  ]);
});

test('SCRAM verifiers match their password only', () => {
  const v = scramVerifier('correct horse', Buffer.alloc(16, 7));
  assert.match(v, /^SCRAM-SHA-256\$4096:BwcHBwcHBwcHBwcHBwcHBw==\$/);
  assert.ok(verifierMatches(v, 'correct horse'));
  assert.not.ok(verifierMatches(v, 'correct horsE'));
  assert.not.ok(verifierMatches('md5abc', 'correct horse'));
  assert.not.ok(verifierMatches(null, 'x'));
});

test('an undeclared login role is reported with the statements that remove it, marked destructive', () => {
  const diffs = diffRoles(declarations, { ...empty, undeclared: [{ name: 'intruder', login: true, privileges: 2 }] });
  const d = diffs.find((x) => x.role === 'intruder')!;
  assert.equal(d, {
    kind: 'extra',
    role: 'intruder',
    destructive: true,
    what: 'undeclared login role with 2 privilege entries on edupulse',
    fix: 'DROP OWNED BY "intruder"; DROP ROLE "intruder"',
  });
  assert.ok(
    diffs.filter((x) => x.role !== 'intruder').every((x) => !x.destructive),
    'nothing else is destructive',
  );
});

test('each named slot (owner, migrator, backup, monitor, reporting) is a declared role; all but the owner log in', () => {
  const byName = new Map(declarations.roles.map((r) => [r.name, r]));
  for (const slot of ['owner', 'migrator', 'backup', 'monitor', 'reporting'] as const) {
    const role = byName.get(declarations[slot]);
    assert.ok(role, `${slot} names ${declarations[slot]}, which is declared`);
    assert.is(role!.login, slot !== 'owner', `${slot}: login`);
  }
  assert.ok(byName.get(declarations.backup)!.replication, 'the backup slot has REPLICATION');
  assert.ok(byName.get(declarations.monitor)!.memberOf.includes('pg_monitor'));
});

test.run();
