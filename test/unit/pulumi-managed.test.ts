// The managed-Postgres stack (mode existing): no containers; provider, roles, schema, objects only.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { declarations } from '../../roles/declarations.ts';
import { loadProgram, mockProgram, plain, resolve, type RecordedOptions } from '../pulumi-mocks.ts';
import { sslOptions } from '../../infra/sql-objects-impl.ts';

const recorded = mockProgram(
  {
    'edupulse:mode': 'existing',
    'edupulse:postgresHost': 'db.example.internal',
    'edupulse:postgresPort': '6432',
    'edupulse:postgresAdminUser': 'edupulse_admin',
    'edupulse:postgresPassword': 'managed-admin-password',
  },
  ['edupulse:postgresPassword'],
);

let program: Record<string, any>;
let graph: Map<string, RecordedOptions>;
test.before(async () => {
  ({ program, graph } = await loadProgram('../infra/index.ts', recorded));
});

test('no containers, images or networks; the provider points at the existing server with TLS', () => {
  assert.equal(
    recorded.filter((r) => r.type.startsWith('docker:')),
    [],
  );
  const provider = recorded.find((r) => r.type === 'pulumi:providers:postgresql')!;
  assert.is(provider.inputs.host, 'db.example.internal');
  assert.is(String(provider.inputs.port), '6432');
  assert.is(provider.inputs.username, 'edupulse_admin');
  assert.is(plain(provider.inputs.password), 'managed-admin-password');
  assert.is(provider.inputs.sslmode, 'require');
});

test('roles, grants, migrations and objects are still declared', async () => {
  assert.is(recorded.filter((r) => r.type === 'postgresql:index/role:Role').length, declarations.roles.length);
  assert.is(recorded.filter((r) => r.type === 'pulumi-nodejs:dynamic:Resource').length, 2);
  const endpoint = await resolve<string>(program.postgresEndpoint);
  assert.is(endpoint.value, 'postgres://edupulse_admin@db.example.internal:6432/edupulse');
  assert.is(program.redisPassword, undefined);
});

test('a managed admin is not a superuser: the provider is told so, REPLICATION is not asked for, the database is adopted', () => {
  const provider = recorded.find((r) => r.type === 'pulumi:providers:postgresql')!;
  assert.is(String(provider.inputs.superuser), 'false', 'superuser follows the mode');
  const backup = recorded.find((r) => r.type === 'postgresql:index/role:Role' && r.inputs.name === 'edupulse_backup')!;
  assert.is(backup.inputs.replication, false, 'REPLICATION needs a superuser to grant');
  assert.equal(backup.inputs.roles, ['pg_read_all_data'], 'the memberships stay');
  const db = graph.get('access-database')!;
  assert.is(db.import, 'edupulse', 'the existing database is imported, not created');
  assert.is(db.retainOnDelete, true, 'and never dropped by destroy');
});

test('sslmode is mapped honestly: require encrypts only, verify-ca checks the chain, verify-full also the name', () => {
  assert.is(sslOptions({ sslmode: 'disable' }), undefined);
  assert.equal(sslOptions({ sslmode: 'require' }), { rejectUnauthorized: false });
  const ca = sslOptions({ sslmode: 'verify-ca', sslrootcert: 'PEM' }) as {
    rejectUnauthorized: boolean;
    ca: string;
    checkServerIdentity: () => unknown;
  };
  assert.is(ca.rejectUnauthorized, true);
  assert.is(ca.ca, 'PEM');
  assert.is(ca.checkServerIdentity(), undefined, 'the host name is not compared');
  assert.equal(sslOptions({ sslmode: 'verify-full', sslrootcert: 'PEM' }), { rejectUnauthorized: true, ca: 'PEM' });
  assert.throws(() => sslOptions({ sslmode: 'prefer' }), /not supported/);
});

test.run();
