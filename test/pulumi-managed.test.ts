// The managed-Postgres stack (mode existing): no containers; provider, roles, schema, objects only.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { declarations } from '../roles/declarations.ts';
import { mockProgram, plain, resolve, settle } from './pulumi-mocks.ts';

const recorded = mockProgram({
  'edupulse:mode': 'existing',
  'edupulse:postgresHost': 'db.example.internal',
  'edupulse:postgresPort': '6432',
  'edupulse:postgresAdminUser': 'edupulse_admin',
  'edupulse:postgresPassword': 'managed-admin-password',
}, ['edupulse:postgresPassword']);

let program: Record<string, any>;
test.before(async () => {
  program = await import('../infra/index.ts');
  await settle(recorded);
});

test('no containers, images or networks; the provider points at the existing server with TLS', () => {
  assert.equal(recorded.filter((r) => r.type.startsWith('docker:')), []);
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

test.run();
