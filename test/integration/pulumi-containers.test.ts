// The containers' configuration booted with this host's own binaries, from
// the same inputs the Pulumi program gives the containers (no Docker here):
// what the server does with it is what the container's server would do.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { REDIS_ENTRYPOINT, redisFlags } from '../../infra/redis-server.ts';
import { defaultSettings } from '../../infra/settings.ts';
import { findRedisServer } from '../../ops-scripts/lib/binaries.ts';
import { redisPing } from '../../ops-scripts/lib/redis.ts';
import {
  CONTAINER_ARCHIVE_SCRIPT,
  CONTAINER_HBA,
  CONTAINER_IDENT,
  CONTAINER_REPO,
  INITDB_ARGS,
} from '../../infra/postgres-server.ts';
import { findPgBinaries } from '../../ops-scripts/lib/binaries.ts';
import { withClient } from '../../ops-scripts/lib/db.ts';
import { serviceUser } from '../../ops-scripts/lib/os-user.ts';
import { run } from '../../ops-scripts/lib/run.ts';
import { freePort, tempStateDir } from '../harness.ts';
import { loadProgram, mockProgram, plain } from '../pulumi-mocks.ts';
import { applyPoolerAuth, applySyncStandbys } from '../../infra/sql-objects-impl.ts';
import { STANDBY_PASSFILE } from '../../infra/replication.ts';
import { declarations } from '../../roles/declarations.ts';
import { findPgbouncer } from '../../ops-scripts/lib/pooler.ts';
import { basename } from 'node:path';
import { userInfo } from 'node:os';

const recorded = mockProgram(
  {
    'edupulse:postgresPort': '55432',
    'edupulse:postgresPassword': 'container-superuser-pw',
    // A standby and PgBouncer too: their configurations boot below beside the primary's.
    'edupulse:standbys': '1',
    'edupulse:pooler': 'true',
  },
  ['edupulse:postgresPassword'],
);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const uidOf = (user: string) => Number(execFileSync('id', ['-u', user]).toString());

test("Redis: the entrypoint hands the official image's entrypoint redis-server, a config only the redis user reads, and the flags", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edupulse-redis-entry-'));
  // Like the container's /tmp: others may enter.
  chmodSync(dir, 0o755);
  const server = (await findRedisServer())!;
  const root = process.getuid?.() === 0;
  // Stands in for the image's docker-entrypoint.sh: as root it drops to the redis user before starting the server (gosu there).
  writeFileSync(
    join(dir, 'docker-entrypoint.sh'),
    [
      '#!/bin/sh',
      `echo "$@" > ${dir}/args`,
      `if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then shift; exec setpriv --reuid=redis --regid=redis --init-groups ${server} "$@"; fi`,
      `shift; exec ${server} "$@"`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const data = join(dir, 'data');
  mkdirSync(data);
  if (root) chownSync(data, uidOf('redis'), 0);
  const port = await freePort();
  const password = `entry-${process.pid}`;
  const conf = join(dir, 'redis.conf');
  const [shell, flag, script, dashdash] = REDIS_ENTRYPOINT as [string, string, string, string];
  const child = spawn(
    shell,
    [
      flag,
      script,
      dashdash,
      ...redisFlags(defaultSettings.redis),
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      data,
    ],
    {
      env: { PATH: `${dir}:${process.env.PATH}`, REDIS_PASSWORD: password, REDIS_CONF_FILE: conf },
      stdio: 'ignore',
    },
  );
  try {
    let up = false;
    for (let i = 0; i < 50 && !up; i++) {
      up = await redisPing({ port, password });
      if (!up) await sleep(100);
    }
    assert.ok(up, 'redis-server answers an authenticated PING with the password from the environment');
    assert.not.ok(await redisPing({ port, password: 'wrong' }), 'and refuses another password');
    assert.match(
      readFileSync(join(dir, 'args'), 'utf8'),
      new RegExp(`^redis-server ${conf} --port 6379 --maxmemory 256mb`),
    );
    const st = statSync(conf);
    assert.is(st.mode & 0o777, 0o600, 'the config holding the password is private');
    if (root) {
      assert.is(st.uid, uidOf('redis'), 'owned by the redis user, who runs the server');
      assert.match(
        readFileSync(`/proc/${child.pid}/status`, 'utf8'),
        new RegExp(`^Uid:\\s+${uidOf('redis')}\\b`, 'm'),
        'the server runs as redis, not root',
      );
    }
  } finally {
    child.kill('SIGKILL');
    spawnSync('pkill', ['-KILL', '-f', `redis-server.*:${port}`]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("Postgres: the container's initdb args, pg_hba and -c flags boot; WAL is archived; only the backup login may replicate from another host; the standby's and PgBouncer's configurations boot beside it", async () => {
  await loadProgram('../infra/index.ts', recorded);
  const named = (suffix: string) =>
    recorded.find((r) => r.type === 'docker:index/container:Container' && r.name.endsWith(suffix))!;
  const c = named('-postgres');
  const envs: string[] = plain(c.inputs.envs);
  const initdbArgs = envs.find((e) => e.startsWith('POSTGRES_INITDB_ARGS='))!.slice('POSTGRES_INITDB_ARGS='.length);
  assert.is(initdbArgs, INITDB_ARGS);
  const uploads = c.inputs.uploads as Array<{ file: string; content: string; permissions: string }>;
  const hba = uploads.find((u) => u.file === CONTAINER_HBA)!.content;
  const archiveScript = uploads.find((u) => u.file === CONTAINER_ARCHIVE_SCRIPT)!;
  const ident = uploads.find((u) => u.file === CONTAINER_IDENT)!.content;
  const flags: string[] = c.inputs.command.slice(1);
  assert.is(c.inputs.command[0], 'postgres');
  const pg = (await findPgBinaries({ minMajor: 15 }))!;
  const as = serviceUser();
  const base = tempStateDir();
  const data = join(base, 'data'),
    wal = join(base, 'wal'),
    run_ = join(base, 'run');
  const port = await freePort();
  const password = 'container-superuser-pw';
  const ns = `ept${process.pid % 100000}`;
  const net = `10.231.${process.pid % 250}`;
  for (const d of [wal, run_]) {
    mkdirSync(d, { mode: 0o700 });
    if (as) chownSync(d, as.uid, as.gid);
  }
  writeFileSync(join(base, 'pwfile'), password, { mode: 0o600 });
  writeFileSync(join(base, 'pg_hba.conf'), hba, { mode: 0o644 });
  // The container's OS user is postgres; here the servers run as the service user: the map names it instead.
  writeFileSync(join(base, 'pg_ident.conf'), ident.replace(/ postgres /g, ` ${as?.name ?? process.env.USER} `), {
    mode: 0o644,
  });
  writeFileSync(join(base, 'archive-wal.sh'), archiveScript.content, { mode: parseInt(archiveScript.permissions, 8) });
  if (as) chownSync(join(base, 'pwfile'), as.uid, as.gid);
  // The container's paths and port, mapped to this test's; every other flag exactly as the container gets it.
  const local = flags.map((f) =>
    f
      .replace(CONTAINER_ARCHIVE_SCRIPT, join(base, 'archive-wal.sh'))
      .replace(`'${CONTAINER_REPO}/wal'`, `'${wal}'`)
      .replace(`hba_file=${CONTAINER_HBA}`, `hba_file=${join(base, 'pg_hba.conf')}`)
      .replace(`ident_file=${CONTAINER_IDENT}`, `ident_file=${join(base, 'pg_ident.conf')}`)
      .replace(/^port=5432$/, `port=${port}`),
  );
  assert.ok(local.includes(`hba_file=${join(base, 'pg_hba.conf')}`), 'the container names its pg_hba with hba_file');
  // The image is PostgreSQL 17, which summarizes WAL for incremental backups; the binaries here are older and
  // do not know the parameter: it alone is left out of the boot (asserted present for the image).
  const summarize = local.indexOf('summarize_wal=on');
  assert.ok(summarize > 0, 'postgres:17 gets summarize_wal=on');
  if (pg.major < 17) local.splice(summarize - 1, 2);
  let server: ReturnType<typeof spawn> | undefined;
  let standby: ReturnType<typeof spawn> | undefined;
  let bouncer: ReturnType<typeof spawn> | undefined;
  try {
    await run(
      pg.bin('initdb'),
      ['-D', data, '-U', 'postgres', `--pwfile=${join(base, 'pwfile')}`, ...initdbArgs.split(' ')],
      { as },
    );
    server = spawn(pg.bin('postgres'), ['-D', data, ...local, '-c', `unix_socket_directories=${run_}`], {
      uid: as?.uid,
      gid: as?.gid,
      stdio: 'ignore',
    });
    const su = { host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' };
    let ready = false;
    for (let i = 0; i < 100 && !ready; i++) {
      ready = await withClient(su, async () => true).catch(() => false);
      if (!ready) await sleep(100);
    }
    assert.ok(ready, "the server started with the container's flags and accepts scram over TCP");
    await withClient(su, async (cl) => {
      assert.is((await cl.query('SHOW data_checksums')).rows[0].data_checksums, 'on');
      await cl.query("CREATE ROLE edupulse_backup LOGIN REPLICATION PASSWORD 'backup-pw'");
      // REPLICATION too: only pg_hba keeps it from replicating.
      await cl.query("CREATE ROLE app_user LOGIN REPLICATION PASSWORD 'app-pw'");
      await cl.query('CREATE TABLE archived AS SELECT 1 AS x');
      await cl.query('SELECT pg_switch_wal()');
    });
    let archived: string[] = [];
    for (let i = 0; i < 100 && !archived.length; i++) {
      archived = readdirSync(wal).filter((f) => /^[0-9A-F]{24}\.zst$/.test(f));
      if (!archived.length) await sleep(100);
    }
    assert.ok(
      archived.length > 0,
      'the uploaded archive script wrote the switched segment, compressed, into the repository',
    );
    // A client on another host: a network namespace with a veth pair of the test's own addresses.
    const ip = (...a: string[]) => run('ip', a);
    await ip('netns', 'add', ns);
    await ip('link', 'add', `${ns}h`, 'type', 'veth', 'peer', 'name', `${ns}n`);
    await ip('link', 'set', `${ns}n`, 'netns', ns);
    await ip('addr', 'add', `${net}.1/30`, 'dev', `${ns}h`);
    await ip('link', 'set', `${ns}h`, 'up');
    await ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${net}.2/30`, 'dev', `${ns}n`);
    await ip('netns', 'exec', ns, 'ip', 'link', 'set', `${ns}n`, 'up');
    await ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
    const psql = (user: string, pw: string, replication: boolean) =>
      run(
        'ip',
        [
          'netns',
          'exec',
          ns,
          pg.bin('psql'),
          '-X',
          '-At',
          '-c',
          replication ? 'IDENTIFY_SYSTEM' : 'SELECT 1',
          `host=${net}.1 port=${port} dbname=postgres user=${user}${replication ? ' replication=true' : ''} connect_timeout=5`,
        ],
        { env: { PGPASSWORD: pw }, nothrow: true },
      );
    const backup = await psql('edupulse_backup', 'backup-pw', true);
    assert.is(backup.code, 0, `the backup login replicates from ${net}.2: ${backup.stderr}`);
    const app = await psql('app_user', 'app-pw', true);
    assert.is.not(app.code, 0);
    assert.match(
      app.stderr,
      new RegExp(
        `no pg_hba.conf entry for replication connection from host "${net.replace(/\./g, '\\.')}\\.2", user "app_user"`,
      ),
    );
    const plainLogin = await psql('app_user', 'app-pw', false);
    assert.is(plainLogin.code, 0, `the same role may log in normally: ${plainLogin.stderr}`);

    // The standby container's configuration: its pg_basebackup line, then its flags, against this primary.
    await withClient(su, async (cl) => {
      await cl.query(`CREATE ROLE ${declarations.replicator} LOGIN REPLICATION PASSWORD 'repl-pw'`);
      await cl.query(`CREATE ROLE ${declarations.pooler} LOGIN`);
      await cl.query(`CREATE ROLE probe_app LOGIN PASSWORD 'probe-pw'`);
      await cl.query('CREATE DATABASE edupulse');
    });
    await applyPoolerAuth({ host: '127.0.0.1', port, user: 'postgres' }, password, 'edupulse');
    const sb = named('-pg1');
    const sbData = join(base, 'pg1'),
      sbRun = join(base, 'pg1-run'),
      passfile = join(base, 'replication.pgpass');
    mkdirSync(sbRun, { mode: 0o700 });
    writeFileSync(passfile, `*:*:*:${declarations.replicator}:repl-pw\n`, { mode: 0o600 });
    for (const f of [sbRun, passfile]) if (as) chownSync(f, as.uid, as.gid);
    const script: string = sb.inputs.entrypoints[2];
    const basebackup = /gosu postgres (pg_basebackup .*?) -C \|\|/.exec(script)![1]!;
    const sbPort = await freePort();
    const toLocal = (line: string) =>
      line
        .replace('-h postgres -p 5432', `-h 127.0.0.1 -p ${port}`)
        .replace(/-D \S+/, `-D ${sbData}`)
        .replace(/"application_name=(\w+)"/, 'application_name=$1');
    await run('/bin/sh', ['-c', `${toLocal(basebackup)} -C && touch ${sbData}/standby.signal`], {
      as,
      env: { PGPASSFILE: passfile },
    });
    const sbFlags = (sb.inputs.command as string[]).slice(1).map((f) =>
      f
        .replace(CONTAINER_ARCHIVE_SCRIPT, join(base, 'archive-wal.sh'))
        .replace(`'${CONTAINER_REPO}/wal'`, `'${wal}'`)
        .replace(`hba_file=${CONTAINER_HBA}`, `hba_file=${join(base, 'pg_hba.conf')}`)
        .replace(`ident_file=${CONTAINER_IDENT}`, `ident_file=${join(base, 'pg_ident.conf')}`)
        .replace(/^port=5432$/, `port=${sbPort}`)
        .replace('host=postgres port=5432', `host=127.0.0.1 port=${port}`)
        .replace(STANDBY_PASSFILE, passfile),
    );
    const sbSummarize = sbFlags.indexOf('summarize_wal=on');
    if (pg.major < 17) sbFlags.splice(sbSummarize - 1, 2);
    standby = spawn(pg.bin('postgres'), ['-D', sbData, ...sbFlags, '-c', `unix_socket_directories=${sbRun}`], {
      uid: as?.uid,
      gid: as?.gid,
      stdio: 'ignore',
    });
    let streaming = false;
    for (let i = 0; i < 100 && !streaming; i++) {
      streaming = await withClient(
        su,
        async (cl) =>
          (await cl.query(`SELECT 1 FROM pg_stat_replication WHERE application_name = 'pg1' AND state = 'streaming'`))
            .rowCount === 1,
      );
      if (!streaming) await sleep(100);
    }
    assert.ok(streaming, "the standby container's flags stream from the primary over its slot as the replicator");
    // Synchronous replication as the program sets it, then a commit that a standby confirmed.
    await applySyncStandbys({ host: '127.0.0.1', port, user: 'postgres' }, password, ['pg1'], 10_000);
    await withClient(su, async (cl) => {
      assert.is((await cl.query('SHOW synchronous_standby_names')).rows[0].synchronous_standby_names, 'ANY 1 (pg1)');
      await cl.query('CREATE TABLE confirmed AS SELECT 1');
    });

    // The PgBouncer container's configuration, run as the servers' OS user (the container's 999:999).
    const pb = named('-pgbouncer');
    const pbDir = join(base, 'pgbouncer');
    mkdirSync(pbDir, { mode: 0o700 });
    if (as) chownSync(pbDir, as.uid, as.gid);
    const pbPort = await freePort();
    const osName = as?.name ?? userInfo().username;
    for (const u of pb.inputs.uploads as Array<{ file: string; content: string }>) {
      const content = u.content
        .replaceAll('/etc/pgbouncer', pbDir)
        .replace(/host=\/var\/run\/postgresql port=5432/, `host=${run_} port=${port}`)
        .replace(/host=\/var\/run\/postgresql-pg1 port=5432/, `host=${sbRun} port=${sbPort}`)
        .replace('listen_addr = *', 'listen_addr = 127.0.0.1')
        .replace('listen_port = 6432', `listen_port = ${pbPort}`)
        .replace('unix_socket_dir = /tmp', `unix_socket_dir = ${pbDir}`)
        .replaceAll('"postgres"', `"${osName}"`)
        .replace(/(admin_users|stats_users) = postgres/g, `$1 = ${osName}`);
      const f = join(pbDir, basename(u.file));
      writeFileSync(f, content, { mode: 0o600 });
      if (as) chownSync(f, as.uid, as.gid);
    }
    assert.equal(pb.inputs.entrypoints, ['pgbouncer', '/etc/pgbouncer/pgbouncer.ini']);
    bouncer = spawn(findPgbouncer()!, [join(pbDir, 'pgbouncer.ini')], { uid: as?.uid, gid: as?.gid, stdio: 'ignore' });
    const via = (database: string) => ({
      host: '127.0.0.1',
      port: pbPort,
      user: 'probe_app',
      password: 'probe-pw',
      database,
    });
    let served: { port: string; standby: boolean } | undefined;
    for (let i = 0; i < 100 && !served; i++) {
      served = await withClient(via('edupulse'), async (cl) => {
        const r = (await cl.query(`SELECT current_setting('port') AS port, pg_is_in_recovery() AS standby`)).rows[0];
        return r as { port: string; standby: boolean };
      }).catch(() => undefined);
      if (!served) await sleep(100);
    }
    assert.equal(
      served,
      { port: String(port), standby: false },
      'PgBouncer serves the primary by SCRAM via auth_query',
    );
    const reporting = await withClient(
      via('edupulse_reporting'),
      async (cl) => (await cl.query('SELECT pg_is_in_recovery() AS r')).rows[0].r,
    );
    assert.is(reporting, true, 'and reporting on the standby');
    const wrong = await withClient({ ...via('edupulse'), password: 'nope' }, async () => 'in').catch(
      (e: Error) => e.message,
    );
    assert.not.equal(wrong, 'in');
  } finally {
    bouncer?.kill('SIGINT');
    standby?.kill('SIGINT');
    server?.kill('SIGINT');
    await run('ip', ['netns', 'del', ns], { nothrow: true });
    await run('ip', ['link', 'del', `${ns}h`], { nothrow: true });
    for (let i = 0; i < 100 && server && server.exitCode === null && server.signalCode === null; i++) await sleep(100);
    rmSync(base, { recursive: true, force: true });
  }
});

test.run();
