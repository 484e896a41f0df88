// The Pulumi program (docker mode) under pulumi.runtime.setMocks: the graph it declares.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { declarations, loginRoles } from '../../roles/declarations.ts';
import { ARCHIVE_WAL_SCRIPT } from '../../infra/wal-archive.ts';
import { mockProgram, plain, resolve, settle, wasSecret, type Recorded } from '../pulumi-mocks.ts';

const recorded = mockProgram(
  {
    'edupulse:postgresPort': '55432',
    'edupulse:redisMaxmemory': '128mb',
    'edupulse:repoDir': '/srv/edupulse/repo',
    'edupulse:postgresPassword': 'configured-superuser-password',
  },
  ['edupulse:postgresPassword'],
);

let program: Record<string, any>;
test.before(async () => {
  program = await import('../../infra/index.ts');
  await settle(recorded);
});

const of = (type: string) => recorded.filter((r) => r.type === type);
const container = (suffix: string): Recorded =>
  of('docker:index/container:Container').find((c) => c.name.endsWith(suffix))!;

test('the Postgres container carries the WAL archiving settings of settings.ts and mounts the repository', () => {
  const pg = container('-postgres');
  const flags: string[] = pg.inputs.command;
  const c = (k: string) => flags[flags.indexOf('-c') >= 0 ? flags.findIndex((f) => f.startsWith(`${k}=`)) : -1];
  assert.is(c('wal_level'), 'wal_level=replica');
  assert.is(c('archive_mode'), 'archive_mode=on');
  assert.is(c('archive_command'), "archive_command='/etc/edupulse/archive-wal.sh' %p %f '/backup/wal' 1");
  assert.is(c('wal_compression'), 'wal_compression=zstd');
  const script = (pg.inputs.uploads as Array<{ file: string; content: string; permissions: string }>).find(
    (u) => u.file === '/etc/edupulse/archive-wal.sh',
  );
  assert.is(script?.content, ARCHIVE_WAL_SCRIPT, 'the archive script is uploaded where archive_command runs it');
  assert.is(script?.permissions, '0755');
  assert.is(c('archive_timeout'), 'archive_timeout=60s');
  assert.is(c('shared_preload_libraries'), 'shared_preload_libraries=pg_stat_statements');
  assert.ok(flags.every((f, i) => i === 0 || flags[i - 1] !== '-c' || /^[\w.]+=/.test(f)));
  assert.equal(
    pg.inputs.volumes.map((v: any) => `${v.hostPath}:${v.containerPath}`),
    ['/var/lib/edupulse/pgdata:/var/lib/postgresql/data', '/srv/edupulse/repo:/backup'],
  );
  assert.equal(pg.inputs.ports, [{ internal: 5432, external: 55432, ip: '127.0.0.1' }]);
  assert.match(pg.inputs.healthcheck.tests.join(' '), /pg_isready/);
  assert.is(pg.inputs.restart, 'unless-stopped');
  assert.ok(wasSecret(pg.inputs.envs), 'the environment holding the password is secret');
  assert.ok(plain(pg.inputs.envs).some((e: string) => e === 'POSTGRES_PASSWORD=configured-superuser-password'));
  assert.not.ok(
    JSON.stringify(pg.inputs.command).includes('configured-superuser-password'),
    'no password on the command line',
  );
  assert.ok(of('docker:index/remoteImage:RemoteImage').some((i) => i.inputs.name === 'postgres:17'));
});

test('Redis has a secret password (not on its command line) and maxmemory', () => {
  const redis = container('-redis');
  assert.ok(redis.inputs.command.join(' ').includes('--maxmemory 128mb'));
  assert.ok(redis.inputs.command.join(' ').includes('--maxmemory-policy allkeys-lru'));
  assert.ok(
    plain(redis.inputs.envs).some((e: string) => e.startsWith('REDIS_PASSWORD=mock-password-for-redis-password')),
  );
  assert.not.ok(JSON.stringify(redis.inputs.command).includes('mock-password'));
  assert.ok(redis.inputs.ports.length === 0, 'not published unless configured');
});

test('postgres_exporter runs as the monitoring login (its password a secret in the environment), after that login exists', () => {
  const exporter = container('-postgres-exporter');
  const envs: string[] = plain(exporter.inputs.envs);
  assert.ok(envs.includes(`DATA_SOURCE_USER=${declarations.monitor}`), envs.join(' '));
  assert.ok(envs.includes('DATA_SOURCE_URI=postgres:5432/edupulse?sslmode=disable'));
  assert.ok(
    envs.some((e) => e.startsWith(`DATA_SOURCE_PASS=mock-password-for-access-${declarations.monitor}-password`)),
  );
  assert.ok(wasSecret(exporter.inputs.envs), 'the environment holding the password is secret');
  assert.not.ok(
    envs.some((e) => e.includes('configured-superuser-password')),
    'never the superuser',
  );
  assert.equal(exporter.inputs.ports, [], 'not published unless configured');
  assert.ok(of('docker:index/remoteImage:RemoteImage').some((i) => /postgres-exporter/.test(i.inputs.name)));
});

test('each declared role has a Role with the declared attributes and memberships', () => {
  const roles = of('postgresql:index/role:Role');
  assert.equal(roles.map((r) => r.inputs.name).sort(), declarations.roles.map((r) => r.name).sort());
  for (const d of declarations.roles) {
    const r = roles.find((x) => x.inputs.name === d.name)!;
    assert.is(r.inputs.login, d.login, d.name);
    assert.is(r.inputs.superuser, false);
    assert.is(r.inputs.connectionLimit, d.connectionLimit);
    assert.is(Boolean(r.inputs.password), d.login, `${d.name}: a login role has a password`);
    if (d.login) assert.ok(wasSecret(r.inputs.password), `${d.name}: its password is a secret`);
  }
  const memberships = roles.flatMap((r) => (r.inputs.roles ?? []).map((g: string) => `${r.inputs.name}>${g}`)).sort();
  assert.equal(memberships, declarations.roles.flatMap((r) => r.memberOf.map((m) => `${r.name}>${m}`)).sort());
  assert.is(
    roles.find((r) => r.inputs.name === 'edupulse_backup')!.inputs.replication,
    true,
    'the backup login may stream WAL',
  );
});

test('each declared grant has a Grant with exactly the declared privileges; PUBLIC keeps nothing', () => {
  const grants = of('postgresql:index/grant:Grant');
  // Without the pooler (the default) there is no pgbouncer schema, so no grant on it (pulumi-replication.test.ts).
  const poolerSchema = (x: (typeof declarations.grants)[number]) => 'schema' in x && x.schema === 'pgbouncer';
  assert.is(declarations.grants.filter(poolerSchema).length, 1);
  for (const g of declarations.grants.filter((x) => !poolerSchema(x))) {
    const found = grants.filter(
      (x) =>
        x.inputs.role === g.role &&
        x.inputs.objectType === g.on &&
        ('schema' in g ? x.inputs.schema === g.schema : true),
    );
    assert.is(found.length, 1, `${g.role} ${g.on}`);
    assert.equal(found[0]!.inputs.privileges, g.privileges);
  }
  const publicGrants = grants.filter((x) => x.inputs.role === 'public');
  assert.equal(
    publicGrants.map((g) => [g.inputs.objectType, g.inputs.privileges]),
    [
      ['database', []],
      ['schema', []],
    ],
  );
  // Every declared grant but the pooler login's on the absent pgbouncer schema, and PUBLIC's two.
  assert.is(grants.length, declarations.grants.length - 1 + 2);
  const defaults = of('postgresql:index/defaultPrivileges:DefaultPrivileges');
  assert.equal(
    defaults.map((d) => `${d.inputs.owner}:${d.inputs.role}:${d.inputs.objectType}:${d.inputs.privileges}`).sort(),
    declarations.defaultPrivileges.map((d) => `${d.owner}:${d.role}:${d.on}:${d.privileges}`).sort(),
  );
  const db = of('postgresql:index/database:Database')[0]!;
  assert.equal([db.inputs.name, db.inputs.owner], ['edupulse', declarations.owner]);
});

test('migrations, the indexes and views and the superuser password are dynamic resources (their order: pulumi-graph.test.ts)', () => {
  assert.equal(
    of('pulumi-nodejs:dynamic:Resource')
      .map((r) => r.name)
      .sort(),
    ['indexes-and-views', 'migrations', 'postgres-superuser'],
  );
  const superuser = recorded.find((r) => r.name === 'postgres-superuser')!;
  assert.ok(wasSecret(superuser.inputs.password), 'the password is a secret input');
});

test('passwords are secret outputs', async () => {
  for (const key of ['superuserPassword', 'redisPassword', 'rolePasswords']) {
    const { secret } = await resolve(program[key]);
    assert.ok(secret, `${key} is secret`);
  }
  const roles = await resolve<Record<string, string>>(program.rolePasswords);
  assert.equal(Object.keys(roles.value).sort(), loginRoles().sort());
  const endpoint = await resolve<string>(program.postgresEndpoint);
  assert.is(endpoint.value, 'postgres://postgres@127.0.0.1:55432/edupulse');
  assert.not.ok(endpoint.value.includes('password'));
});

test.run();
