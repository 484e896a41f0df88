// The Pulumi program with standbys, synchronous replication and PgBouncer
// (edupulse:standbys, edupulse:replication, edupulse:pooler) under mocks: the
// graph's edges as the engine would order them, and what each container gets.
// test/integration/pulumi-containers.test.ts boots these configurations.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { declarations } from '../../roles/declarations.ts';
import { loadProgram, mockProgram, plain, waitsFor, wasSecret, type RecordedOptions } from '../pulumi-mocks.ts';

const recorded = mockProgram(
  {
    'edupulse:postgresPort': '55432',
    'edupulse:postgresPassword': 'configured-superuser-password',
    'edupulse:standbys': '2',
    'edupulse:replication': 'sync',
    'edupulse:pooler': 'true',
    'edupulse:poolerPort': '56432',
  },
  ['edupulse:postgresPassword'],
);
let graph: Map<string, RecordedOptions>;
test.before(async () => {
  ({ graph } = await loadProgram('../infra/index.ts', recorded));
});

const containers = () => recorded.filter((r) => r.type === 'docker:index/container:Container');
const named = (suffix: string) => containers().find((c) => c.name.endsWith(suffix))!;
const resource = (type: string) => [...graph].filter(([, o]) => o.type === type).map(([n]) => n);

test('each standby container waits for the primary and the replicator login; it streams over its own slot with a passfile, never a password', () => {
  const primary = named('-postgres').name;
  const replicator = resource('postgresql:index/role:Role').find((n) =>
    n.endsWith(`-role-${declarations.replicator}`),
  )!;
  for (const i of [1, 2]) {
    const c = named(`-pg${i}`);
    assert.ok(waitsFor(graph, c.name, primary), `pg${i} after the primary`);
    assert.ok(waitsFor(graph, c.name, replicator), `pg${i} after the replicator login`);
    const flags: string[] = c.inputs.command;
    const conninfo = flags.find((f) => f.startsWith('primary_conninfo='))!;
    assert.match(conninfo, new RegExp(`user=${declarations.replicator} passfile=\\S+ application_name=pg${i}`));
    assert.not.match(conninfo, /password/);
    assert.ok(flags.includes(`primary_slot_name=edupulse_pg${i}`));
    // The primary's own parameters (archiving included: a promoted standby takes it over).
    assert.ok(flags.some((f) => f.startsWith('archive_command=')));
    assert.match(c.inputs.entrypoints.join(' '), new RegExp(`pg_basebackup .* -S edupulse_pg${i}`));
    const uploads = c.inputs.uploads;
    assert.ok(
      wasSecret(uploads) || (plain(uploads) as Array<{ content: unknown }>).some((u) => wasSecret(u.content)),
      'the passfile upload is a secret',
    );
    assert.ok((plain(uploads) as Array<{ file: string }>).some((u) => u.file.endsWith('replication.pgpass')));
  }
});

test('synchronous replication is set only after the standbys exist and the schema is applied', () => {
  assert.ok(graph.has('synchronous-standbys'));
  for (const i of [1, 2]) assert.ok(waitsFor(graph, 'synchronous-standbys', named(`-pg${i}`).name));
  assert.ok(waitsFor(graph, 'synchronous-standbys', 'migrations'));
  const r = recorded.find((x) => x.name === 'synchronous-standbys')!;
  assert.equal(plain(r.inputs.names), ['pg1', 'pg2']);
});

test("PgBouncer waits for the lookup function and the pooler's login; it runs as the servers' OS user with auth_query and no password", () => {
  const c = named('-pgbouncer');
  const auth = resource('pulumi-nodejs:dynamic:Resource').find((n) => n.endsWith('-pooler-auth'))!;
  assert.ok(auth, 'the lookup function is declared');
  assert.ok(waitsFor(graph, c.name, auth));
  const pooler = resource('postgresql:index/role:Role').find((n) => n.endsWith(`-role-${declarations.pooler}`))!;
  assert.ok(waitsFor(graph, auth, pooler), 'the function after its login');
  // The pooler login's USAGE on the function's schema only once the schema exists.
  const usage = recorded.find(
    (r) =>
      r.type === 'postgresql:index/grant:Grant' &&
      r.inputs.role === declarations.pooler &&
      r.inputs.objectType === 'schema',
  )!;
  assert.ok(waitsFor(graph, usage.name, auth));
  assert.is(c.inputs.user, '999:999');
  const uploads = c.inputs.uploads as Array<{ file: string; content: string }>;
  const ini = uploads.find((u) => u.file.endsWith('pgbouncer.ini'))!.content;
  assert.match(ini, /auth_user = edupulse_pooler/);
  assert.match(ini, /auth_query = SELECT usename, passwd FROM pgbouncer.get_auth\(\$1\)/);
  assert.match(ini, /^edupulse = host=\/var\/run\/postgresql port=5432 dbname=edupulse$/m);
  assert.match(ini, /^edupulse_reporting = host=\/var\/run\/postgresql-pg1 port=5432 dbname=edupulse$/m);
  assert.equal(uploads.find((u) => u.file.endsWith('userlist.txt'))!.content, '"postgres" ""\n');
  assert.equal(c.inputs.ports, [{ internal: 6432, external: 56432, ip: '127.0.0.1' }]);
  // The socket directories it looks secrets up on are the servers' own.
  const socket = (name: string) =>
    (named(name).inputs.volumes as Array<{ hostPath: string; containerPath: string }>).find(
      (v) => v.containerPath === '/var/run/postgresql',
    )!.hostPath;
  const mounts = c.inputs.volumes as Array<{ hostPath: string; containerPath: string }>;
  assert.is(mounts.find((v) => v.containerPath === '/var/run/postgresql')!.hostPath, socket('-postgres'));
  assert.is(mounts.find((v) => v.containerPath === '/var/run/postgresql-pg1')!.hostPath, socket('-pg1'));
});
test.run();
