// The Pulumi program's graph as the engine would order it: every resource's
// options recorded by a stack transformation (dependsOn, parent, provider,
// retainOnDelete, import), and the edges asserted, not the order in which the
// program happened to register things. Also a preview with unknown inputs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { declarations } from '../../roles/declarations.ts';
import { loadProgram, mockProgram, plain, waitsFor, type RecordedOptions } from '../pulumi-mocks.ts';

const recorded = mockProgram({ 'edupulse:postgresPort': '55432' }, [], {
  preview: true,
  unknown: (t) => t.startsWith('random:'),
});
let graph: Map<string, RecordedOptions>;
test.before(async () => {
  ({ graph } = await loadProgram('../infra/index.ts', recorded));
});

const named = (type: string) => [...graph].filter(([, o]) => o.type === type).map(([n]) => n);
const roles = () => named('postgresql:index/role:Role');
const tableGrants = () =>
  recorded
    .filter((r) => r.type === 'postgresql:index/grant:Grant' && ['table', 'sequence'].includes(r.inputs.objectType))
    .map((r) => r.name);

test('the postgresql provider waits for the Postgres container (healthy: wait and a pg_isready check), so does everything it serves', () => {
  const container = named('docker:index/container:Container').find((n) => n.endsWith('-postgres'))!;
  assert.ok(waitsFor(graph, 'access-provider', container), 'provider after container');
  for (const r of roles()) assert.ok(waitsFor(graph, r, container), `${r} after the container`);
  const c = recorded.find((r) => r.name === container)!;
  assert.is(c.inputs.wait, true, 'the engine waits for the container to be healthy');
  assert.match(c.inputs.healthcheck.tests.join(' '), /pg_isready/);
  assert.match(
    plain(c.inputs.envs).find((e: unknown) => typeof e === 'string' && e.startsWith('POSTGRES_INITDB_ARGS=')),
    /--data-checksums/,
  );
});

test('a new superuser password is set in place before the provider logs in with it; the container is not replaced for it', () => {
  const container = named('docker:index/container:Container').find((n) => n.endsWith('-postgres'))!;
  assert.ok(waitsFor(graph, 'postgres-superuser', container));
  assert.ok(waitsFor(graph, 'access-provider', 'postgres-superuser'), 'the provider after the rotation');
  assert.equal(
    graph.get(container)!.ignoreChanges,
    ['envs'],
    'POSTGRES_PASSWORD (read only at initdb) does not replace the container',
  );
});

test('roles before migrations, migrations before indexes and views, both before the table and sequence grants', () => {
  for (const r of roles()) assert.ok(waitsFor(graph, 'migrations', r), `migrations after ${r}`);
  assert.ok(waitsFor(graph, 'migrations', 'access-database'));
  assert.ok(waitsFor(graph, 'indexes-and-views', 'migrations'));
  assert.ok(tableGrants().length > 0);
  for (const g of tableGrants()) {
    assert.ok(
      waitsFor(graph, g, 'migrations') && waitsFor(graph, g, 'indexes-and-views'),
      `${g} after the tables and views exist`,
    );
    assert.equal(recorded.find((r) => r.name === g)!.inputs.objects, [], `${g}: every object of the schema, not a few`);
  }
});

test('postgres_exporter starts once the monitoring login it uses exists', () => {
  const exporter = named('docker:index/container:Container').find((n) => n.endsWith('-postgres-exporter'))!;
  assert.ok(exporter, 'an exporter container');
  assert.ok(waitsFor(graph, exporter, `access-role-${declarations.monitor}`));
});

test('memberships are declared on each Role (no GrantRole the next Role update would revoke)', () => {
  assert.equal(
    recorded.filter((r) => r.type === 'postgresql:index/grantRole:GrantRole'),
    [],
  );
  for (const d of declarations.roles) {
    const r = recorded.find((x) => x.type === 'postgresql:index/role:Role' && x.inputs.name === d.name)!;
    assert.equal(r.inputs.roles ?? [], d.memberOf, d.name);
    for (const g of d.memberOf.filter((m) => declarations.roles.some((x) => x.name === m))) {
      assert.ok(waitsFor(graph, `access-role-${d.name}`, `access-role-${g}`), `${d.name} after its group ${g}`);
    }
  }
});

test('the database is kept on destroy or replacement (retainOnDelete), and created in docker mode', () => {
  const db = graph.get('access-database')!;
  assert.is(db.retainOnDelete, true);
  assert.is(db.import, undefined);
  assert.is(
    String(recorded.find((r) => r.type === 'pulumi:providers:postgresql')!.inputs.superuser),
    'true',
    "our container's admin is a superuser",
  );
});

test('a preview with unknown passwords: the dynamic resources get an unknown connection, and every resource has a parent or is top-level by design', () => {
  for (const name of ['migrations', 'indexes-and-views']) {
    const r = recorded.find((x) => x.name === name)!;
    assert.is(r.inputs.connection?.__pulumiUnknown, true, `${name}: connection unknown in the preview`);
  }
  for (const [name, o] of graph) {
    if (o.type.startsWith('postgresql:') || o.type.startsWith('pulumi:providers:'))
      assert.is(o.parent, 'access', `${name} is a child of DatabaseAccess`);
  }
  for (const name of ['migrations', 'indexes-and-views'])
    assert.is(graph.get(name)!.parent, 'access', `${name} is a child of DatabaseAccess`);
});

test.run();
