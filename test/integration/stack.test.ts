// The local stack through its commands, as a user runs them, against the
// real servers they start.
import { existsSync, readFileSync, readdirSync, rmSync, statSync, mkdirSync, chmodSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { withClient, type PgConfig } from '../../ops-scripts/lib/db.ts';
import { postmasterPid } from '../../ops-scripts/lib/cluster.ts';
import { redisPid } from '../../ops-scripts/lib/redis.ts';
import { readSecrets, type Secrets } from '../../ops-scripts/lib/secrets.ts';
import { isRoot } from '../../ops-scripts/lib/os-user.ts';
import { runJob } from '../cli.ts';
import { tempStateDir, testEnv } from '../harness.ts';

let root = '';
let env: Record<string, string> = {};

const secrets = (): Secrets => readSecrets(join(root, 'secrets.json'))!;
const pgConfig = (): PgConfig => ({
  host: '127.0.0.1',
  port: Number(env.EDUPULSE_PG_PORT),
  user: 'postgres',
  password: secrets().postgres.password,
  database: 'edupulse',
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function upJson(): Promise<{
  changed: boolean;
  steps: Array<{ name: string; status: string; detail?: string }>;
}> {
  const r = await runJob('up', ['--json'], env);
  assert.is(r.code, 0, `up failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test.before(async () => {
  root = tempStateDir();
  rmSync(root, { recursive: true }); // up creates it, as on a fresh clone
  env = await testEnv(root);
});

test.after(async () => {
  await runJob('down', [], env);
  rmSync(root, { recursive: true, force: true });
});

test('bad settings in the environment exit 2 naming the variable, and create nothing', async () => {
  for (const [name, value] of [
    ['EDUPULSE_PG_PORT', '70000'],
    ['EDUPULSE_PG_ARCHIVE_TIMEOUT', '-5'],
    ['EDUPULSE_REDIS_EVICTION_POLICY', 'bogus'],
  ]) {
    const r = await runJob('up', [], { ...env, [name!]: value });
    assert.is(r.code, 2, `${name}=${value}: ${r.stderr}`);
    assert.match(r.stderr, name!);
    assert.not.ok(existsSync(root), 'the state directory must not be created');
  }
});

test('up with a port held by another process: exit 2 naming the port and its holder, nothing created or started', async () => {
  for (const variable of ['EDUPULSE_PG_PORT', 'EDUPULSE_REDIS_PORT'] as const) {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as { port: number }).port;
    try {
      const r = await runJob('up', [], { ...env, [variable]: String(port) });
      assert.is(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`port ${port} for (PostgreSQL|Redis) is already in use by pid ${process.pid}`));
      assert.match(r.stderr, new RegExp(variable));
      assert.not.ok(existsSync(root), 'nothing created, nothing started');
    } finally {
      busy.close();
    }
  }
});

test('an unknown flag is bad input', async () => {
  const r = await runJob('up', ['--frobnicate'], env);
  assert.is(r.code, 2);
  assert.match(r.stderr, '--frobnicate');
  assert.not.ok(existsSync(root));
});

test('up on a fresh state dir: archiving into the repository, Redis only with its password', async () => {
  const result = await upJson();
  assert.ok(result.changed);
  await withClient(pgConfig(), async (c) => {
    const show = async (name: string) => (await c.query(`SELECT current_setting($1) AS v`, [name])).rows[0].v as string;
    assert.is(await show('wal_level'), 'replica');
    assert.is(await show('archive_mode'), 'on');
    assert.is(await show('archive_library'), '');
    assert.is(
      await show('archive_command'),
      `'${join(root, 'pg', 'archive-wal.sh')}' %p %f '${join(root, 'repo', 'wal')}' 1`,
    );
    assert.is(await show('wal_compression'), 'zstd');
    assert.is(await show('data_checksums'), 'on');
    const { rows } = await c.query<{ walfile: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS walfile');
    const segment = rows[0]!.walfile;
    const deadline = Date.now() + 15_000;
    const archived = join(root, 'repo', 'wal', `${segment}.zst`);
    while (!existsSync(archived) && Date.now() < deadline) await sleep(100);
    assert.ok(existsSync(archived), `segment ${segment} archived, compressed`);
    // What the archive holds is the segment the server wrote (still in its pg_wal).
    const original = (await c.query('SELECT pg_read_binary_file($1) AS b', [`pg_wal/${segment}`])).rows[0].b as Buffer;
    const unpacked = spawnSync('zstd', ['-q', '-d', '-c', archived], { maxBuffer: 64 << 20 }).stdout;
    assert.ok(unpacked.equals(original), 'the archived segment decompresses to the bytes in pg_wal');
  });
  const port = Number(env.EDUPULSE_REDIS_PORT);
  // No ready check: it would send INFO unauthenticated and close the connection first.
  const anonymous = new Redis({
    port,
    lazyConnect: true,
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  anonymous.on('error', () => {});
  await anonymous.connect();
  try {
    await anonymous.ping();
    assert.unreachable('PING without a password must be refused');
  } catch (err) {
    assert.match((err as Error).message, /NOAUTH/);
  } finally {
    anonymous.disconnect();
  }
  const authed = new Redis({ port, password: secrets().redis.password, lazyConnect: true, retryStrategy: () => null });
  try {
    await authed.connect();
    assert.is(await authed.ping(), 'PONG');
    await authed.set('prediction:S1', '{"risk":0.4}');
  } finally {
    authed.disconnect();
  }
});

test('status finds the running stack on its own ports when the environment no longer names them, and says so', async () => {
  const r = await runJob('status', ['--json'], { EDUPULSE_STATE_DIR: root });
  const s = JSON.parse(r.stdout);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.is(s.postgres.state, 'running');
  assert.is(s.redis.state, 'running');
  assert.match(s.postgres.url, new RegExp(`:${env.EDUPULSE_PG_PORT}/`));
  assert.ok(
    s.notes.some((n: string) => n.includes(`runs on port ${env.EDUPULSE_PG_PORT}`) && n.includes('EDUPULSE_PG_PORT')),
    JSON.stringify(s.notes),
  );
  assert.ok(
    s.notes.some((n: string) => n.includes(`runs on port ${env.EDUPULSE_REDIS_PORT}`)),
    JSON.stringify(s.notes),
  );
});

test('the secrets file is 0600, the state dir 0700, both owned by the service user', () => {
  assert.is(statSync(root).mode & 0o777, 0o700);
  assert.is(statSync(join(root, 'secrets.json')).mode & 0o777, 0o600);
  assert.is(statSync(join(root, 'repo', 'wal')).mode & 0o777, 0o700);
  assert.is(statSync(join(root, 'redis', 'redis.conf')).mode & 0o777, 0o600);
});

test('TCP without a password and with a wrong one is rejected (scram, no trust)', async () => {
  for (const password of [undefined, 'wrong-password']) {
    try {
      await withClient({ ...pgConfig(), password }, async () => {});
      assert.unreachable('connection must be refused');
    } catch (err) {
      assert.match((err as Error).message, /password/);
    }
  }
});

test("pg_hba: no trust anywhere; on the socket, peer only for the OS owner (as the superuser or the pooler's lookup login), SCRAM for the rest", async () => {
  await withClient(pgConfig(), async (c) => {
    const { rows } = await c.query<{ type: string; user_name: string[]; auth_method: string }>(
      'SELECT type, user_name, auth_method FROM pg_hba_file_rules',
    );
    assert.ok(rows.length > 0);
    assert.not.ok(rows.some((r) => r.auth_method === 'trust'));
    assert.equal(
      rows.filter((x) => x.type === 'local').map((r) => [r.user_name, r.auth_method]),
      [
        [['postgres'], 'peer'],
        [['edupulse_pooler'], 'peer'],
        [['all'], 'scram-sha-256'],
      ],
    );
    assert.ok(rows.filter((x) => x.type === 'host').every((r) => r.auth_method === 'scram-sha-256'));
  });
});

test('up twice: the second reports nothing to do', async () => {
  const r = await runJob('up', [], env);
  assert.is(r.code, 0);
  assert.match(r.stdout, /nothing to do/);
  assert.ok((await upJson()).steps.every((s) => s.status === 'skipped'));
});

test('a changed maxmemory is applied with CONFIG SET, without restarting Redis, and kept for the next start', async () => {
  const pidFile = join(root, 'redis', 'redis.pid');
  const before = redisPid({ pidFile })!;
  const r = await runJob('up', ['--json'], { ...env, EDUPULSE_REDIS_MAXMEMORY: '96mb' });
  assert.is(r.code, 0, r.stderr);
  const step = JSON.parse(r.stdout).steps.find((s: { step?: string; name?: string }) =>
    /redis: settings/.test(s.step ?? s.name ?? ''),
  );
  assert.ok(step, r.stdout);
  assert.match(JSON.stringify(step), /without a restart/);
  assert.is(redisPid({ pidFile }), before, 'the same redis-server process');
  const secrets = readSecrets(join(root, 'secrets.json'))!;
  const redis = new Redis({
    port: Number(env.EDUPULSE_REDIS_PORT),
    password: secrets.redis.password,
    lazyConnect: true,
    retryStrategy: () => null,
  });
  await redis.connect();
  try {
    assert.equal(await redis.config('GET', 'maxmemory'), ['maxmemory', String(96 * 1024 * 1024)]);
  } finally {
    redis.disconnect();
  }
  assert.match(
    readFileSync(join(root, 'redis', 'redis.conf'), 'utf8'),
    /^maxmemory "96mb"$/m,
    'persisted for the next start',
  );
  // Back to the default, the same way.
  assert.is((await runJob('up', [], env)).code, 0);
  assert.is(redisPid({ pidFile }), before);
});

test('no password in status output, logs, or any server command line', async () => {
  const text = await runJob('status', [], env);
  const json = await runJob('status', ['--json'], env);
  assert.is(text.code, 0, text.stderr);
  assert.is(JSON.parse(json.stdout).postgres.settings.wal_level, 'replica');
  const s = secrets();
  const haystacks = [text.stdout, text.stderr, json.stdout, (await runJob('up', ['--verbose'], env)).stderr];
  for (const f of readdirSync(join(root, 'logs'))) haystacks.push(readFileSync(join(root, 'logs', f), 'utf8'));
  const pids = [postmasterPid(join(root, 'pg', 'data'))!, redisPid({ pidFile: join(root, 'redis', 'redis.pid') })!];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (/postgres|redis/.test(cmd)) haystacks.push(cmd);
    } catch {
      /* exited */
    }
  }
  assert.ok(pids.every((p) => p > 0));
  for (const h of haystacks) {
    assert.not.ok(h.includes(s.postgres.password), 'postgres password leaked');
    assert.not.ok(h.includes(s.redis.password), 'redis password leaked');
  }
});

test('down stops both; up again finds the data written before', async () => {
  await withClient(pgConfig(), async (c) => {
    await c.query('CREATE TABLE keepme (v text)');
    await c.query("INSERT INTO keepme VALUES ('still here')");
  });
  const down = await runJob('down', [], env);
  assert.is(down.code, 0, down.stderr);
  assert.is(postmasterPid(join(root, 'pg', 'data')), undefined);
  assert.is(redisPid({ pidFile: join(root, 'redis', 'redis.pid') }), undefined);
  const status = await runJob('status', [], env);
  assert.is(status.code, 1);
  assert.match(status.stdout, /postgres\s+stopped/);
  assert.match(status.stdout, /redis\s+stopped/);
  assert.ok((await upJson()).changed);
  await withClient(pgConfig(), async (c) => {
    assert.is((await c.query('SELECT v FROM keepme')).rows[0].v, 'still here');
  });
  const redis = new Redis({
    port: Number(env.EDUPULSE_REDIS_PORT),
    password: secrets().redis.password,
    lazyConnect: true,
    retryStrategy: () => null,
  });
  try {
    await redis.connect();
    assert.is(await redis.get('prediction:S1'), '{"risk":0.4}', 'Redis kept its data (rdb persistence)');
  } finally {
    redis.disconnect();
  }
});

test('kill -9 of the postmaster and of Redis, then up: recovers and serves', async () => {
  const pgPid = postmasterPid(join(root, 'pg', 'data'))!;
  const rPid = redisPid({ pidFile: join(root, 'redis', 'redis.pid') })!;
  process.kill(pgPid, 'SIGKILL');
  process.kill(rPid, 'SIGKILL');
  await sleep(200);
  const result = await upJson();
  const pgStep = result.steps.find((s) => s.name === 'postgres')!;
  assert.is(pgStep.status, 'done');
  assert.match(pgStep.detail!, /recovered/);
  assert.is(result.steps.find((s) => s.name === 'redis')!.status, 'done');
  await withClient(pgConfig(), async (c) => {
    assert.is((await c.query('SELECT v FROM keepme')).rows[0].v, 'still here');
  });
});

test('a state dir the service user cannot reach is refused up front (exit 2, nothing created)', async () => {
  if (!isRoot()) return; // only as root do the servers run as another user
  const locked = tempStateDir();
  chmodSync(locked, 0o700);
  chownSync(locked, 0, 0);
  const inner = join(locked, 'home', 'state');
  mkdirSync(join(locked, 'home'));
  try {
    const r = await runJob('up', [], { ...env, EDUPULSE_STATE_DIR: inner });
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, /not reachable/);
    assert.match(r.stderr, /EDUPULSE_STATE_DIR/);
    assert.not.ok(existsSync(inner));
  } finally {
    rmSync(locked, { recursive: true, force: true });
  }
});

test.run();
