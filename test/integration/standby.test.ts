// A hot standby by PostgreSQL's own streaming replication, synchronous, with
// PgBouncer in front, from the settings (EDUPULSE_PG_STANDBYS,
// EDUPULSE_PG_REPLICATION, EDUPULSE_POOLER): up makes the standby with
// pg_basebackup over a physical slot as the replicator login (not the
// superuser) and starts it; a row written on the primary is read on the
// standby within a bound; the standby refuses writes; status shows it
// streaming, its lag and what its slot holds back, and the pooler's pools;
// health goes critical when it stops streaming; the pooler authenticates
// without a password on disk; failover refuses bad input and a lagging
// standby, switches over, and the failover drill kills the primary under
// load and loses no acknowledged commit; the old primary rejoins by pg_rewind
// each time; up again changes nothing; down stops it all.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { declarations } from '../../roles/declarations.ts';
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
    stack = await startTestStack({
      env: {
        EDUPULSE_PG_STANDBYS: '1',
        EDUPULSE_PG_PORT: String(port),
        EDUPULSE_PG_REPLICATION: 'sync',
        EDUPULSE_POOLER: 'on',
        EDUPULSE_POOLER_PORT: String(await freePort()),
      },
    });
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

test("roles:rotate of the replication login: the standby's passfile follows, and the standby reconnects with it", async () => {
  const r = await runJob('roles:rotate', [declarations.replicator], stack.env);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /the standbys' passfile .* holds the new one too/);
  // The walreceiver authenticates only when it connects: cut its connection, and it must come back.
  await withClient(stack.pg, (c) =>
    c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = 'pg1'"),
  );
  let streaming = false;
  for (let i = 0; i < 100 && !streaming; i++) {
    await sleep(100);
    streaming = await withClient(
      stack.pg,
      async (c) =>
        (
          await c.query(
            "SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'pg1' AND state = 'streaming'",
          )
        ).rows[0].n === 1,
    );
  }
  assert.ok(streaming, 'pg1 streams again after reconnecting with the new password');
});

test('stop refuses a standby of the stack (exit 3), with or without --remove: it stops only restored and drill clusters', async () => {
  for (const args of [[standbyDir()], [standbyDir(), '--remove']]) {
    const r = await runJob('stop', args, stack.env);
    assert.is(r.code, 3, r.stderr);
    assert.match(r.stderr, /is a server of the stack \(a standby or the primary\)/);
  }
  const streaming = await withClient(
    stack.pg,
    async (c) =>
      (await c.query("SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'pg1'")).rows[0].n,
  );
  assert.is(streaming, 1, 'pg1 still streams');
  assert.ok(existsSync(join(standbyDir(), 'PG_VERSION')));
});

const pooled = (role: string, database = stack.ctx.settings.postgres.database) => ({
  ...stack.login(role, database),
  port: stack.ctx.settings.pooler.port,
});
const topology = () => {
  const f = join(stack.ctx.paths.root, 'pg', 'topology.json');
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : { primary: 0, history: [] };
};

test('the pooler: clients by their SCRAM secrets (no password on disk), the primary for the app, a standby for reporting', async () => {
  const port = (cfg: ReturnType<typeof pooled>) =>
    withClient(
      cfg,
      async (c) => (await c.query(`SELECT current_setting('port') AS p, pg_is_in_recovery() AS r`)).rows[0],
    );
  assert.equal(await port(pooled('app_user')), { p: String(stack.ctx.settings.postgres.port), r: false });
  assert.equal(await port(pooled('reporting', 'edupulse_reporting')), {
    p: String(stack.ctx.settings.postgres.port + 1),
    r: true,
  });
  const wrong = await withClient({ ...pooled('app_user'), password: 'not-it' }, async () => 'in').catch(
    (e: Error) => e.message,
  );
  assert.match(wrong, /password authentication failed|SASL authentication failed/, wrong);
  // The superuser and the replication login are not served: the lookup returns no secret for them.
  const su = await withClient({ ...stack.pg, port: stack.ctx.settings.pooler.port }, async () => 'in').catch(
    (e: Error) => e.message,
  );
  assert.not.equal(su, 'in');
  const secrets = JSON.parse(readFileSync(stack.ctx.paths.secretsFile, 'utf8'));
  const passwords = [secrets.postgres.password, ...Object.values(secrets.roles)] as string[];
  const dir = join(stack.ctx.paths.root, 'pooler');
  for (const f of readdirSync(dir).filter((f) => !f.endsWith('.pid'))) {
    const text = readFileSync(join(dir, f), 'utf8');
    assert.not.ok(
      passwords.some((p) => text.includes(p)),
      `${f} holds a password`,
    );
    assert.is(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  }
  const pools = JSON.parse((await runJob('status', ['--json'], stack.env)).stdout).postgres.pooler;
  assert.is(pools.state, 'running');
  assert.ok(pools.pools.some((p: { database: string; user: string }) => p.user === 'app_user'));
});

test('backup --from-standby reads from the standby; a recovery drill restores it exactly (sync settings do not follow it)', async () => {
  const bad = await runJob('backup', ['--from-standby', '--standby', 'pg9'], stack.env);
  assert.is(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /no such standby; nothing was taken/);
  assert.equal(readdirSync(join(stack.ctx.paths.repoDir, 'base')), []);
  const r = await runJob('backup', ['--from-standby', '--json'], stack.env);
  assert.is(r.code, 0, r.stderr);
  const record = JSON.parse(r.stdout).record;
  assert.equal(record.physical.fromStandby, { name: 'pg1', port: stack.ctx.settings.postgres.port + 1 });
  const d = await runJob('drill', ['--backup', record.id, '--json'], stack.env);
  assert.is(d.code, 0, d.stdout + d.stderr);
  assert.is(JSON.parse(d.stdout).passed, true);
});

test('failover refuses bad input and a lagging standby with nothing changed', async () => {
  const unknown = await runJob('failover', ['--to', 'pg7'], stack.env);
  assert.is(unknown.code, 2, unknown.stderr);
  assert.match(unknown.stderr, /--to pg7: no such standby.*\n.*use one of pg1/);
  const none = await runJob('failover', [], {
    ...stack.env,
    EDUPULSE_PG_STANDBYS: '0',
    EDUPULSE_PG_REPLICATION: 'async',
  });
  assert.is(none.code, 2, none.stderr);
  assert.match(none.stderr, /no standby to promote/);
  // Replay paused on the standby: it receives (so sync commits go on) but falls behind.
  await withClient(standby(), (c) => c.query('SELECT pg_wal_replay_pause()'));
  try {
    await withClient(stack.owner(), (c) =>
      c.query('CREATE TABLE lagging AS SELECT g FROM generate_series(1, 20000) g'),
    );
    const lagging = await runJob('failover', ['--max-lag-bytes', '1000'], stack.env);
    assert.is(lagging.code, 3, lagging.stderr);
    assert.match(lagging.stderr, /pg1 is \d+ bytes behind the primary \(more than 1000\); nothing was changed/);
  } finally {
    await withClient(standby(), (c) => c.query('SELECT pg_wal_replay_resume()'));
  }
  assert.equal(topology(), { primary: 0, history: [] });
  assert.is(
    await withClient(stack.pg, async (c) => (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r),
    false,
  );
});

test('switchover: pg1 becomes the primary, the pooler follows on the same port, pg0 rejoins by pg_rewind', async () => {
  const app = await withClient(pooled('app_user'), async (c) => {
    const r = JSON.parse((await runJob('failover', ['--json'], stack.env)).stdout);
    assert.is(r.kind, 'switchover');
    assert.is(r.to, 'pg1');
    assert.is(r.oldPrimary, 'rejoined');
    assert.is(r.pooler, 'reloaded');
    assert.is(r.syncStandbys, 'ANY 1 (pg0)');
    // The same client connection, its next transaction: on the new primary.
    return (await c.query(`SELECT current_setting('port') AS p, pg_is_in_recovery() AS r`)).rows[0];
  });
  assert.equal(app, { p: String(stack.ctx.settings.postgres.port + 1), r: false });
  assert.is(topology().primary, 1);
  const st = JSON.parse((await runJob('status', ['--json'], stack.env)).stdout).postgres;
  assert.match(st.primary, /^pg1 on port/);
  assert.is(st.standbys[0].name, 'pg0');
  assert.is(st.standbys[0].state, 'streaming');
});

test('drill --failover: the primary killed under load through the pooler, no acknowledged commit lost (sync), pooler serves again, audit clean', async () => {
  const r = await runJob('drill', ['--failover', '--json'], stack.env);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const d = JSON.parse(r.stdout);
  assert.is(d.kind, 'failover');
  assert.is(d.passed, true, JSON.stringify(d.checks));
  assert.ok(d.ackedCommits > 0);
  assert.is(d.lostCommits, 0);
  assert.is(d.failover.kind, 'failover');
  assert.is(d.failover.to, 'pg0');
  assert.is(d.failover.oldPrimary, 'rejoined');
  assert.type(d.rto.detectSeconds, 'number');
  assert.type(d.rto.firstWriteSeconds, 'number');
  assert.match(readFileSync(d.history, 'utf8'), /failover pg1 -> pg0 \(sync\)/);
  assert.is(topology().primary, 0);
  assert.equal(
    topology().history.map((h: { kind: string; from: string; to: string }) => [h.kind, h.from, h.to]),
    [
      ['switchover', 'pg0', 'pg1'],
      ['failover', 'pg1', 'pg0'],
    ],
  );
  const checks = JSON.parse((await runJob('health', ['--json'], stack.env)).stdout).checks as Array<{
    name: string;
    level: string;
  }>;
  assert.is(checks.find((c) => c.name === 'replication_lag_bytes_pg1')!.level, 'ok');
  assert.is(checks.find((c) => c.name === 'pooler_waiting_clients')!.level, 'ok');
  // The drill's probe rows are gone with it.
  assert.is(
    await withClient(
      stack.pg,
      async (c) => (await c.query('SELECT count(*)::int AS n FROM edupulse_meta.failover_probes')).rows[0].n,
    ),
    0,
  );
});

test('up again changes nothing; down stops the standby with the primary', async () => {
  const again = JSON.parse((await runJob('up', ['--json', '--no-redis'], stack.env)).stdout);
  assert.is(again.changed, false, JSON.stringify(again.steps));
  const pid = postmasterPid(standbyDir());
  assert.ok(pid);
  const down = await runJob('down', [], stack.env);
  assert.is(down.code, 0, down.stderr);
  assert.match(down.stdout + down.stderr, /postgres pg1: stopped/);
  assert.match(down.stdout + down.stderr, /pgbouncer: stopped/);
  assert.is(postmasterPid(standbyDir()), undefined);
  const up = await runJob('up', ['--no-redis'], stack.env);
  assert.is(up.code, 0, up.stderr);
});

test.run();
