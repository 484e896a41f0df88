// A hot standby by PostgreSQL's own streaming replication, from the one
// setting (EDUPULSE_PG_STANDBYS): up makes it with pg_basebackup -R over a
// physical slot as the replicator login (not the superuser) and starts it; a
// row written on the primary is read on the standby within a bound; the
// standby refuses writes; status shows it streaming, its lag and what its slot
// holds back; health goes critical when it stops streaming; up again changes
// nothing; down stops it.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withClient } from '../../ops-scripts/lib/db.ts';
import { postmasterPid, startCluster, stopCluster } from '../../ops-scripts/lib/cluster.ts';
import { runJob } from '../cli.ts';
import { freePort, logged, startTestStack, type TestStack } from '../harness.ts';
import { portFree } from '../../ops-scripts/lib/ports.ts';

let stack: TestStack;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const standbyDir = () => join(stack.ctx.paths.root, 'pg', 'pg1');
const standby = () => ({ ...stack.pg, port: stack.ctx.settings.postgres.port + 1 });

test.before(
  logged(async () => {
    // The standby listens on the primary's port + 1: a primary port whose next one is free too.
    let port = await freePort();
    while (!(await portFree(port + 1))) port = await freePort();
    stack = await startTestStack({ env: { EDUPULSE_PG_STANDBYS: '1', EDUPULSE_PG_PORT: String(port) } });
  }),
);
test.after(logged(async () => stack?.stop()));

test('up made the standby from the primary over its slot, as the replicator login', async () => {
  assert.ok(existsSync(join(standbyDir(), 'standby.signal')));
  // Where it streams from is in the managed configuration; the password only in the passfile (0600).
  const conf = readFileSync(join(standbyDir(), 'edupulse.conf'), 'utf8');
  assert.match(conf, /primary_slot_name = 'edupulse_pg1'/);
  assert.match(conf, /user=edupulse_replicator passfile=\S+replication.pgpass/);
  const password = JSON.parse(readFileSync(stack.ctx.paths.secretsFile, 'utf8')).roles.edupulse_replicator;
  for (const f of ['edupulse.conf', 'postgresql.auto.conf'])
    assert.not.ok(readFileSync(join(standbyDir(), f), 'utf8').includes(password), `${f} holds the password`);
  assert.is(statSync(join(stack.ctx.paths.root, 'pg', 'replication.pgpass')).mode & 0o777, 0o600);
  await withClient(stack.pg, async (c) => {
    const r = (await c.query(`SELECT usename, application_name, state FROM pg_stat_replication`)).rows;
    assert.equal(r, [{ usename: 'edupulse_replicator', application_name: 'pg1', state: 'streaming' }]);
  });
});

test('a row written on the primary is read on the standby within a second; the standby refuses writes', async () => {
  await withClient(stack.owner(), (c) => c.query('CREATE TABLE IF NOT EXISTS replicated (n int)'));
  await withClient(stack.pg, (c) => c.query('INSERT INTO replicated VALUES (42)'));
  const t0 = Date.now();
  let seen = false;
  while (!seen && Date.now() - t0 < 5000) {
    seen = await withClient(
      standby(),
      async (c) =>
        (await c.query('SELECT count(*)::int AS n FROM replicated WHERE n = 42').catch(() => ({ rows: [{ n: 0 }] })))
          .rows[0].n === 1,
    );
    if (!seen) await sleep(50);
  }
  assert.ok(seen, 'replicated');
  assert.ok(Date.now() - t0 < 1000, `within a second (${Date.now() - t0} ms)`);
  const refused = await withClient(standby(), (c) => c.query('INSERT INTO replicated VALUES (1)')).then(
    () => undefined,
    (err: { code?: string }) => err.code,
  );
  assert.is(refused, '25006', 'read-only transaction');
});

test('status shows the standby streaming, its replay lag and what its slot holds back', async () => {
  const r = await runJob('status', ['--json'], stack.env);
  const sb = JSON.parse(r.stdout).postgres.standbys;
  assert.is(sb.length, 1);
  assert.is(sb[0].name, 'pg1');
  assert.is(sb[0].running, true);
  assert.is(sb[0].state, 'streaming');
  assert.type(sb[0].replayLagBytes, 'number');
  assert.type(sb[0].slotRetainedBytes, 'number');
  assert.match((await runJob('status', [], stack.env)).stdout, /standby pg1\s+running on port \d+, streaming/);
});

test('health checks the standby: ok while it streams, critical once it stops', async () => {
  const check = async () =>
    (
      JSON.parse((await runJob('health', ['--json'], stack.env)).stdout).checks as Array<{
        name: string;
        level: string;
        detail: string;
      }>
    ).find((c) => c.name === 'replication_lag_bytes_pg1')!;
  const ok = await check();
  assert.is(ok.level, 'ok', ok.detail);
  const spec = {
    pg: stack.ctx.pg,
    dataDir: standbyDir(),
    logFile: join(stack.ctx.paths.logDir, 'pg1.log'),
    port: standby().port,
    as: stack.ctx.as,
  };
  await stopCluster(spec, 'fast');
  try {
    const down = await check();
    assert.is(down.level, 'critical');
    assert.match(down.detail, /pg1 is not streaming/);
  } finally {
    await startCluster(spec);
  }
});

test('up again changes nothing; down stops the standby with the primary', async () => {
  const again = JSON.parse((await runJob('up', ['--json', '--no-redis'], stack.env)).stdout);
  assert.is(again.changed, false, JSON.stringify(again.steps));
  const pid = postmasterPid(standbyDir());
  assert.ok(pid);
  const down = await runJob('down', [], stack.env);
  assert.is(down.code, 0, down.stderr);
  assert.match(down.stdout + down.stderr, /postgres pg1: stopped/);
  assert.is(postmasterPid(standbyDir()), undefined);
  const up = await runJob('up', ['--no-redis'], stack.env);
  assert.is(up.code, 0, up.stderr);
});

test.run();
