// The dynamic providers as Pulumi's engine runs them: the compiled program
// under mocks serializes each provider (its `__provider` text, as it goes into
// the state), then Pulumi's own dynamic-provider host
// (@pulumi/pulumi/cmd/dynamic-provider) is started as a plain `node` process
// (no loader flags, no NODE_OPTIONS, its cwd outside the checkout) and driven
// over its gRPC ResourceProvider interface, against a real throwaway cluster.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { declarations } from '../../roles/declarations.ts';
import { withClient } from '../../ops-scripts/lib/db.ts';
import { migrate, migratorConfig, migrationNames } from '../../migrations/engine/migrate.ts';
import { reconcile } from '../../views/engine/index.ts';
import { readSecrets } from '../../ops-scripts/lib/secrets.ts';
import { PROJECT_ROOT } from '../../ops-scripts/lib/state.ts';
import { logged, startTestStack, type TestStack } from '../harness.ts';
import { mockProgram, plain, settle } from '../pulumi-mocks.ts';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const structproto = require('google-protobuf/google/protobuf/struct_pb');
const provproto = require('@pulumi/pulumi/proto/provider_pb');
const provrpc = require('@pulumi/pulumi/proto/provider_grpc_pb');
const DiffChanges = provproto.DiffResponse.DiffChanges;
const UNKNOWN = '04da6b54-80e4-46f7-96ec-b56ff0331ba9';

const recorded = mockProgram({ 'edupulse:postgresPort': '55432', 'edupulse:repoDir': '/srv/edupulse/repo' });
let stack: TestStack;
let host: ChildProcess;
let cwd = '';
let client: any;
const serialized: Record<string, Record<string, any>> = {};

function call<T>(method: string, req: unknown): Promise<T> {
  return new Promise((res, rej) => client[method](req, (err: Error | null, r: T) => (err ? rej(err) : res(r))));
}
const struct = (o: unknown) => structproto.Struct.fromJavaScript(o);

function createReq(props: object) {
  const r = new provproto.CreateRequest();
  r.setUrn('urn:test');
  r.setProperties(struct(props));
  return r;
}
function diffReq(olds: object, news: object) {
  const r = new provproto.DiffRequest();
  r.setId('id');
  r.setUrn('urn:test');
  r.setOlds(struct(olds));
  r.setNews(struct(news));
  return r;
}
function updateReq(olds: object, news: object) {
  const r = new provproto.UpdateRequest();
  r.setId('id');
  r.setUrn('urn:test');
  r.setOlds(struct(olds));
  r.setNews(struct(news));
  return r;
}
function deleteReq(props: object) {
  const r = new provproto.DeleteRequest();
  r.setId('id');
  r.setUrn('urn:test');
  r.setProperties(struct(props));
  return r;
}

test.before(
  logged(async () => {
    stack = await startTestStack();
    const password = readSecrets(stack.ctx.paths.secretsFile)!.roles[declarations.migrator]!;
    const owner = migratorConfig(stack.pg, password);
    // Start from a schema two migrations short and without the managed objects, as a fresh stack would be.
    await reconcile(owner, { declared: { indexes: [], views: [] } });
    await migrate(owner, { direction: 'down', count: 2 });
    // The program as Pulumi.yaml runs it: compiled.
    await import(join(PROJECT_ROOT, 'dist', 'infra', 'index.js'));
    await settle(recorded);
    const connection = {
      host: '127.0.0.1',
      port: stack.ctx.settings.postgres.port,
      database: 'edupulse',
      migratorPassword: password,
      sslmode: 'disable',
      lockTimeout: '5s',
    };
    for (const r of recorded.filter((x) => x.type.startsWith('pulumi-nodejs:dynamic'))) {
      serialized[r.name] = { ...plain(r.inputs), connection };
    }
    serialized['postgres-superuser'] = {
      ...serialized['postgres-superuser'],
      connection: {
        host: '127.0.0.1',
        port: stack.ctx.settings.postgres.port,
        user: stack.secrets.postgres.superuser,
        sslmode: 'disable',
      },
      password: stack.secrets.postgres.password,
    };
    cwd = mkdtempSync(join(tmpdir(), 'edupulse-provider-host-'));
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    host = spawn(
      process.execPath,
      [join(PROJECT_ROOT, 'node_modules/@pulumi/pulumi/cmd/dynamic-provider'), '127.0.0.1:1'],
      { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    host.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const port = await new Promise<number>((res, rej) => {
      host.stdout!.setEncoding('utf8').once('data', (d: string) => res(Number(d.trim())));
      host.once('exit', (code) => rej(new Error(`the provider host exited (${code}): ${stderr}`)));
    });
    client = new provrpc.ResourceProviderClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const configure = new provproto.ConfigureRequest();
    configure.setArgs(struct({}));
    await call('configure', configure);
  }),
);
test.after(async () => {
  client?.close();
  host?.kill('SIGKILL');
  await stack?.stop();
  if (cwd) rmSync(cwd, { recursive: true, force: true });
});

test('the serialized providers carry no checkout path, no file URL and no import.meta', () => {
  assert.equal(Object.keys(serialized).sort(), ['indexes-and-views', 'migrations', 'postgres-superuser']);
  for (const [name, inputs] of Object.entries(serialized)) {
    const text = inputs.__provider as string;
    assert.type(text, 'string');
    assert.not.ok(text.includes(PROJECT_ROOT), `${name}: no checkout path`);
    assert.not.ok(/file:\/\//.test(text), `${name}: no file URL`);
    assert.not.ok(text.includes('import.meta'), `${name}: no import.meta (a syntax error in CommonJS)`);
  }
});

test('Migrations in the provider host: create applies the pending ones; diff is a change for unknown inputs without connecting', async () => {
  const m = serialized.migrations!;
  const created = (await call<any>('create', createReq(m))).getProperties().toJavaScript();
  assert.equal(created.applied, migrationNames().slice(-2));
  const same = await call<any>('diff', diffReq(created, m));
  assert.is(same.getChanges(), DiffChanges.DIFF_NONE);
  const unknown = await call<any>('diff', diffReq(created, { ...m, connection: UNKNOWN }));
  assert.is(unknown.getChanges(), DiffChanges.DIFF_SOME, 'a preview with the connection unknown is a change');
  const updated = (await call<any>('update', updateReq(created, { ...m, migrationsHash: 'next' })))
    .getProperties()
    .toJavaScript();
  assert.equal(updated.applied, [], 'nothing pending the second time');
});

test('IndexesAndViews in the provider host: create, drift seen by diff, update, delete of managed objects only', async () => {
  const o = serialized['indexes-and-views']!;
  const created = (await call<any>('create', createReq(o))).getProperties().toJavaScript();
  assert.ok(created.applied.length > 0);
  assert.is((await call<any>('diff', diffReq(created, o))).getChanges(), DiffChanges.DIFF_NONE);
  await withClient(stack.pg, (c) => c.query('DROP INDEX idx_attendance_student_date'));
  assert.is(
    (await call<any>('diff', diffReq(created, o))).getChanges(),
    DiffChanges.DIFF_SOME,
    'drift in the live catalog is a change',
  );
  await call('update', updateReq(created, o));
  assert.is((await call<any>('diff', diffReq(created, o))).getChanges(), DiffChanges.DIFF_NONE);
  await withClient(stack.pg, (c) => c.query('CREATE INDEX hand_made_index ON grades (semester)'));
  await call('delete', deleteReq(created));
  await withClient(stack.pg, async (c) => {
    const { rows } = await c.query(
      `SELECT count(*)::int AS n FROM pg_class c WHERE obj_description(c.oid, 'pg_class') LIKE 'edupulse-db managed%'`,
    );
    assert.is(rows[0].n, 0, 'every managed index and view is gone');
    assert.ok(
      (await c.query("SELECT to_regclass('public.hand_made_index') IS NOT NULL AS ok")).rows[0].ok,
      'a hand-made index stays',
    );
  });
});

test('SuperuserPassword in the provider host: a new password is set in place (old one refused after), a wrong one is named', async () => {
  const s = serialized['postgres-superuser']!;
  const login = (password: string) =>
    withClient({ ...stack.pg, password, database: 'postgres' }, async () => 'ok').catch(
      (e: { code?: string }) => e.code,
    );
  const created = (await call<any>('create', createReq(s))).getProperties().toJavaScript();
  const rotated = { ...s, password: `rotated-${process.pid}` };
  assert.is((await call<any>('diff', diffReq(created, rotated))).getChanges(), DiffChanges.DIFF_SOME);
  await call('update', updateReq(created, rotated));
  assert.is(await login(rotated.password), 'ok', 'the new password works');
  assert.is(await login(s.password), '28P01', 'the old one is refused');
  await call('update', updateReq(created, rotated)); // a retry: nothing to do, no error
  await call('update', updateReq(rotated, s)); // and back, for the other tests
  assert.is(await login(s.password), 'ok');
  const refused = await call('create', createReq({ ...s, password: 'not-the-one' })).catch((e: Error) => e.message);
  assert.match(String(refused), /initialized with another one/);
});

test.run();
