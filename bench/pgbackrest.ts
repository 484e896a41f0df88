// npm run bench:pgbackrest: our backup repository side by side with
// pgBackRest (Debian's package; zstd level 1, process-max 2, start-fast) on
// the same seeded data (BENCH_STUDENTS, default 50,000: about 1 GB). Installs
// nothing: without pgbackrest on the PATH it measures our side only, says so,
// and exits 0.
//
// A copy of the seeded cluster (pg_basebackup) archives with pgbackrest
// archive-push; the stack's own cluster archives with our zstd script. Then,
// in alternating rounds (ours, theirs, ...), medians:
//   1. a full backup including its verification (ours: the backup job, which
//      stream-verifies; pgBackRest: backup, then verify);
//   2. the stored size of that backup, and of the WAL archived after the same
//      write burst on both clusters (~500 MB of WAL, BENCH_WAL_MB);
//   3. a point-in-time restore to the end of that burst (so the burst is
//      replayed), until the cluster is promoted and writable;
//   4. our restore of the same target from the object store (s3rver), against
//      our restore from the local repository.
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import S3rver from 's3rver';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { backupContext } from '../ops-scripts/lib/backup/context.ts';
import { runBackup } from '../ops-scripts/lib/backup/job.ts';
import { offloadAll } from '../ops-scripts/lib/backup/offload.ts';
import { RemoteStore, remoteSettings } from '../ops-scripts/lib/backup/remote.ts';
import { renderConf, startCluster, stopCluster, type ClusterSpec } from '../ops-scripts/lib/cluster.ts';
import { withClient, type PgConfig } from '../ops-scripts/lib/db.ts';
import { ensurePrivateDir } from '../ops-scripts/lib/files.ts';
import { archiveUpToNow } from '../ops-scripts/lib/restore/archive-now.ts';
import { openCatalog } from '../ops-scripts/lib/restore/catalog.ts';
import { restore } from '../ops-scripts/lib/restore/restore.ts';
import { run } from '../ops-scripts/lib/run.ts';
import { pgEnv } from '../ops-scripts/lib/pg-password.ts';
import { seed } from '../ops-scripts/lib/seed/load.ts';
import { freePort, startTestStack } from '../test/harness.ts';

const STUDENTS = Number(process.env.BENCH_STUDENTS ?? 50_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WAL_MB = Number(process.env.BENCH_WAL_MB ?? 500);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const MB = (n: number) => `${(n / 1048576).toFixed(0)} MB`;
const secs = (t0: number) => (performance.now() - t0) / 1000;
const hasPgbackrest = spawnSync('pgbackrest', ['version']).status === 0;

function dirBytes(dir: string, filter: (name: string) => boolean = () => true): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += dirBytes(p, filter);
    else if (filter(e.name)) total += statSync(p).size;
  }
  return total;
}

/** The same write burst on either cluster: rows until `mb` of WAL were written. Returns the WAL bytes. */
async function writeBurst(conn: PgConfig, mb: number): Promise<number> {
  return withClient(conn, async (c) => {
    await c.query('CREATE TABLE IF NOT EXISTS bench_burst (id bigint, payload text)');
    const start = (await c.query('SELECT pg_current_wal_lsn() AS l')).rows[0].l as string;
    let written = 0;
    for (let batch = 0; written < mb * 1048576; batch++) {
      await c.query(
        `INSERT INTO bench_burst SELECT g, md5(g::text) || repeat(md5((g * 7)::text), 3) FROM generate_series($1::bigint, $1::bigint + 199999) g`,
        [batch * 200_000],
      );
      written = Number(
        (await c.query('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint AS b', [start])).rows[0].b,
      );
    }
    return written;
  });
}

const stack = await startTestStack();
const root = stack.ctx.paths.root;
const as = stack.ctx.as;
const pg = stack.ctx.pg;
const s3dir = join(root, 's3');
let server: S3rver | undefined;
const running: ClusterSpec[] = [];
try {
  const t0 = performance.now();
  await seed(stack.owner(), { seed: 'bench', students: STUDENTS, yearEnd: '2026-06-12' }, { existing: 'refuse' });
  // Frozen and checkpointed before the copy is made: no autovacuum backlog on either side adds WAL to the burst.
  await withClient(stack.pg, async (c) => {
    await c.query('VACUUM (FREEZE, ANALYZE)');
    await c.query('CHECKPOINT');
  });
  const ctx = backupContext(stack.ctx, { ...process.env, ...stack.env });
  console.error(`seeded ${STUDENTS} students in ${secs(t0).toFixed(0)} s`);

  // pgBackRest's cluster: a copy of the seeded one, archiving with archive-push.
  const br = join(root, 'pgbackrest');
  const copy: ClusterSpec = {
    pg,
    dataDir: join(br, 'data'),
    socketDir: join(br, 'run'),
    logFile: join(br, 'postgres.log'),
    port: await freePort(),
    as,
  };
  const conf = join(br, 'pgbackrest.conf');
  const brArgs = (...a: string[]) => [`--config=${conf}`, '--stanza=bench', ...a];
  const pgbackrest = (...a: string[]) => run('pgbackrest', brArgs(...a), { as, dieWithParent: true });
  const copyConn: PgConfig = {
    host: '127.0.0.1',
    port: copy.port,
    user: stack.secrets.postgres.superuser,
    database: stack.pg.database,
  };
  if (hasPgbackrest) {
    ensurePrivateDir(br, as);
    for (const d of ['repo', 'log', 'lock', 'spool']) ensurePrivateDir(join(br, d), as);
    await run(
      pg.bin('pg_basebackup'),
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(stack.pg.port),
        '-U',
        String(ctx.backupLogin.user),
        '-D',
        copy.dataDir,
        '-X',
        'stream',
        '-c',
        'fast',
      ],
      { as, env: pgEnv(ctx.backupLogin) },
    );
    writeFileSync(
      join(copy.dataDir, 'pg_hba.conf'),
      'local all all trust\nhost all all 127.0.0.1/32 trust\nlocal replication all trust\n',
    );
    writeFileSync(
      join(copy.dataDir, 'edupulse.conf'),
      renderConf({
        port: String(copy.port),
        listen_addresses: '127.0.0.1',
        unix_socket_directories: copy.socketDir!,
        hba_file: join(copy.dataDir, 'pg_hba.conf'),
        archive_mode: 'on',
        archive_command: `pgbackrest --config=${conf} --stanza=bench archive-push %p`,
        wal_level: 'replica',
        wal_compression: 'zstd',
        shared_preload_libraries: 'pg_stat_statements',
      }),
    );
    writeFileSync(
      conf,
      [
        '[global]',
        `repo1-path=${join(br, 'repo')}`,
        'repo1-retention-full=2',
        'compress-type=zst',
        'compress-level=1',
        'process-max=2',
        'start-fast=y',
        'log-level-console=warn',
        `log-path=${join(br, 'log')}`,
        `lock-path=${join(br, 'lock')}`,
        `spool-path=${join(br, 'spool')}`,
        '',
        '[bench]',
        `pg1-path=${copy.dataDir}`,
        `pg1-port=${copy.port}`,
        `pg1-socket-path=${copy.socketDir}`,
        `pg1-user=${stack.secrets.postgres.superuser}`,
        '',
      ].join('\n'),
    );
    if (as) for (const f of ['pg_hba.conf', 'edupulse.conf']) chownSync(join(copy.dataDir, f), as.uid, as.gid);
    if (as) chownSync(conf, as.uid, as.gid);
    rmSync(join(copy.dataDir, 'postmaster.pid'), { force: true });
    console.error('pgBackRest copy cluster made; starting it');
    await startCluster(copy);
    running.push(copy);
    await pgbackrest('stanza-create');
    console.error('stanza created');
  } else {
    console.log(
      'bench:pgbackrest: pgbackrest is not on the PATH (apt-get install pgbackrest): measuring our side only',
    );
  }

  // 1 and 2: full backup with verification, alternating.
  const backupTimes: Record<'ours' | 'theirs', number[]> = { ours: [], theirs: [] };
  let ourStored = 0;
  for (let i = 0; i < ROUNDS; i++) {
    let t = performance.now();
    const { record } = await runBackup(ctx, { type: 'physical', keep: { physical: 2, logical: 14 } });
    backupTimes.ours.push(secs(t));
    ourStored = record.sizes.storedBytes;
    if (hasPgbackrest) {
      t = performance.now();
      await pgbackrest('--type=full', 'backup');
      await pgbackrest('verify');
      backupTimes.theirs.push(secs(t));
    }
  }
  let theirStored = 0;
  if (hasPgbackrest) {
    const info = JSON.parse((await run('pgbackrest', brArgs('info', '--output=json'), { as })).stdout);
    const backups = info[0].backup as Array<{ info: { repository: { delta: number } } }>;
    theirStored = backups[backups.length - 1]!.info.repository.delta;
  }

  console.error('backups done; write burst');
  // The same burst on both; what each archive stored for it.
  const ourWal = () => dirBytes(ctx.repo.walDir, (f) => /^[0-9A-F]{24}/.test(f));
  const theirWal = () => dirBytes(join(br, 'repo', 'archive'), (f) => /^[0-9A-F]{24}-/.test(f));
  const ourBefore = ourWal();
  const ourWalBytes = await writeBurst(stack.pg, WAL_MB);
  await sleep(1100);
  const target = new Date();
  await sleep(1100);
  await archiveUpToNow(stack.pg);
  const ourArchived = ourWal() - ourBefore;
  let theirArchived = 0;
  let theirTarget = new Date();
  let theirWalBytes = 0;
  if (hasPgbackrest) {
    const before = theirWal();
    theirWalBytes = await writeBurst(copyConn, WAL_MB);
    // A commit after the target, archived: PostgreSQL stops at a time target only on a later commit record.
    await sleep(1100);
    theirTarget = new Date();
    await sleep(1100);
    await withClient(copyConn, (c) => c.query('INSERT INTO bench_burst VALUES (-1, $1)', ['after the target']));
    await archiveUpToNow(copyConn);
    theirArchived = theirWal() - before;
  }

  // 3: point-in-time restore to the end of the burst (ours and theirs need the burst's WAL replayed).
  const restoreTimes: Record<'ours' | 'theirs' | 'remote', number[]> = { ours: [], theirs: [], remote: [] };
  const superuser = { user: stack.secrets.postgres.superuser, password: stack.secrets.postgres.password };
  const ourRestore = async (fromRemote: boolean) => {
    const scratch = join(root, `restore-${Date.now()}`);
    ensurePrivateDir(scratch, as);
    const t = performance.now();
    const opened = await openCatalog(ctx, root, fromRemote);
    try {
      const r = await restore(ctx, {
        target: { kind: 'time', time: target },
        to: join(scratch, 'data'),
        start: true,
        liveDataDir: stack.ctx.paths.dataDir,
        superuser,
        catalog: opened.catalog,
      });
      const took = secs(t);
      await stopCluster(r.spec, 'immediate');
      const tm = r.timings;
      const phases = `choose ${tm.chooseSeconds.toFixed(2)}, extract ${tm.extractSeconds.toFixed(2)}, replay ${tm.replaySeconds?.toFixed(2)}, promote ${tm.promoteSeconds?.toFixed(2)} s`;
      return { took, replayed: r.replayedWalBytes ?? 0, prefetch: r.walPrefetch, phases };
    } finally {
      opened.close();
      rmSync(scratch, { recursive: true, force: true });
    }
  };
  const theirRestore = async () => {
    const dir = join(br, `restore-${Date.now()}`);
    ensurePrivateDir(dir, as);
    const spec: ClusterSpec = {
      pg,
      dataDir: join(dir, 'data'),
      logFile: join(dir, 'pg.log'),
      port: await freePort(),
      as,
    };
    ensurePrivateDir(spec.dataDir, as);
    const t = performance.now();
    try {
      await pgbackrest(
        'restore',
        `--pg1-path=${spec.dataDir}`,
        '--type=time',
        `--target=${theirTarget.toISOString().replace('T', ' ').replace('Z', '+00')}`,
        '--target-action=promote',
      );
      writeFileSync(
        join(spec.dataDir, 'edupulse.conf'),
        renderConf({
          port: String(spec.port),
          listen_addresses: '127.0.0.1',
          unix_socket_directories: '',
          hba_file: join(spec.dataDir, 'pg_hba.conf'),
          archive_mode: 'off',
          shared_preload_libraries: 'pg_stat_statements',
        }),
      );
      if (as) chownSync(join(spec.dataDir, 'edupulse.conf'), as.uid, as.gid);
      await startCluster(spec);
      const conn = { ...copyConn, port: spec.port };
      for (;;) {
        const inRecovery = await withClient(conn, async (c) => {
          const r = (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r as boolean;
          if (!r) await c.query('CREATE TABLE restored_probe AS SELECT 1 AS x');
          return r;
        });
        if (!inRecovery) break;
        await sleep(50);
      }
      const took = secs(t);
      await stopCluster(spec, 'immediate');
      return took;
    } catch (err) {
      console.error(spawnSync('tail', ['-20', spec.logFile]).stdout.toString());
      throw err;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  // 4 needs the store: our backups and WAL offloaded to a local S3 server.
  const port = await freePort();
  mkdirSync(s3dir, { recursive: true });
  server = new S3rver({ port, address: '127.0.0.1', silent: true, directory: s3dir });
  await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    EDUPULSE_REPO_MODE: 'copy',
    EDUPULSE_S3_BUCKET: 'edupulse-bench',
    EDUPULSE_S3_ENDPOINT: endpoint,
    EDUPULSE_S3_REGION: 'us-east-1',
  });
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  await client.send(new CreateBucketCommand({ Bucket: 'edupulse-bench' }));
  client.destroy();
  const store = new RemoteStore(remoteSettings()!);
  const off = await offloadAll(ctx, store, 'copy');
  store.close();
  if (!off.ok) throw new Error(`offload failed: ${off.error}`);

  console.error('offloaded; restores');
  let replayed = 0;
  let prefetch = '';
  const phases = { local: '', remote: '' };
  for (let i = 0; i < ROUNDS; i++) {
    const local = await ourRestore(false);
    restoreTimes.ours.push(local.took);
    phases.local = local.phases;
    replayed = local.replayed;
    if (hasPgbackrest) restoreTimes.theirs.push(await theirRestore());
    const remote = await ourRestore(true);
    restoreTimes.remote.push(remote.took);
    prefetch = JSON.stringify(remote.prefetch);
    phases.remote = remote.phases;
  }

  const row = (label: string, ours: number, theirs: number | undefined, unit: (n: number) => string) =>
    `  ${label.padEnd(44)} ${unit(ours).padStart(10)}  ${theirs === undefined ? '(no pgbackrest)'.padStart(10) : unit(theirs).padStart(10)}  ${theirs ? `${(ours / theirs).toFixed(2)}x` : ''}`;
  const s = (n: number) => `${n.toFixed(2)} s`;
  const theirs = (xs: number[]) => (hasPgbackrest ? median(xs) : undefined);
  console.log(
    [
      `bench:pgbackrest: ${STUDENTS} students, ${ROUNDS} alternating rounds, medians; ours vs pgBackRest ${hasPgbackrest ? spawnSync('pgbackrest', ['version']).stdout.toString().trim() : ''} (zst:1, process-max 2)`,
      `  ${''.padEnd(44)} ${'ours'.padStart(10)}  ${'pgBackRest'.padStart(10)}  ratio`,
      row('full backup + verification (wall)', median(backupTimes.ours), theirs(backupTimes.theirs), s),
      row('stored size of the backup', ourStored, hasPgbackrest ? theirStored : undefined, MB),
      row(
        `archived WAL after the burst (${MB(ourWalBytes)}${hasPgbackrest ? ` / ${MB(theirWalBytes)}` : ''} written)`,
        ourArchived,
        hasPgbackrest ? theirArchived : undefined,
        MB,
      ),
      row(`PITR restore, ${MB(replayed)} WAL replayed`, median(restoreTimes.ours), theirs(restoreTimes.theirs), s),
      `  ${'ours from the object store vs ours local'.padEnd(44)} ${s(median(restoreTimes.remote)).padStart(10)}  ${s(median(restoreTimes.ours)).padStart(10)}  ${(median(restoreTimes.remote) / median(restoreTimes.ours)).toFixed(2)}x  (prefetch ${prefetch})`,
      `  last round's phases: local ${phases.local}; from the store ${phases.remote}`,
    ].join('\n'),
  );
} finally {
  for (const spec of running) await stopCluster(spec, 'immediate').catch(() => {});
  await server?.close();
  await stack.stop();
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
