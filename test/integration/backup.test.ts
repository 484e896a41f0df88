// Backups against a real seeded cluster, through the commands a user runs.
import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  openSync,
  readSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { walIndex } from '../../ops-scripts/lib/backup/layout.ts';
import { withClient } from '../../ops-scripts/lib/db.ts';
import { seed } from '../../ops-scripts/lib/seed/load.ts';
import { run } from '../../ops-scripts/lib/run.ts';
import { PROJECT_ROOT } from '../../ops-scripts/lib/state.ts';
import { clusterSpec } from '../../ops-scripts/lib/stack-context.ts';
import { startCluster, stopCluster } from '../../ops-scripts/lib/cluster.ts';
import { ensurePrivateDir } from '../../ops-scripts/lib/files.ts';
import { interruptJob, runJob } from '../cli.ts';
import { compareFingerprints } from '../../ops-scripts/lib/backup/fingerprint.ts';
import { LocalRepository } from '../../ops-scripts/lib/backup/repository.ts';
import { extractBaseBackup } from '../../ops-scripts/lib/backup/extract.ts';
import { freePort, logged, startTestStack, type TestStack } from '../harness.ts';
import { STREAM_VERIFY_TOOL } from '../../ops-scripts/lib/backup/stream-verify.ts';

let stack: TestStack;
let repo = '';
const owner = () => stack.owner();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Listed {
  id: string;
  kind: string;
  physical?: { startSegment: string };
  verification: { ok: boolean };
}
const list = async (): Promise<{ backups: Listed[]; unfinished: unknown[] }> => {
  const r = await runJob('backup:list', ['--json'], stack.env);
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
};
const backupJson = async (args: string[]) => {
  const r = await runJob('backup', [...args, '--json'], stack.env);
  assert.is(r.code, 0, r.stdout + r.stderr);
  return JSON.parse(r.stdout) as {
    record: { id: string; kind: string; files: Array<{ name: string }>; physical?: { startSegment: string } };
  };
};

test.before(
  logged(async () => {
    stack = await startTestStack();
    repo = stack.ctx.paths.repoDir;
    await seed(owner(), { seed: 'backup', students: 300, yearEnd: '2026-06-12' }, { existing: 'refuse' });
  }),
);
test.after(async () => {
  await stack?.stop();
});

test('a physical backup is complete, verified against its manifest, private, and listed', async () => {
  const { record } = await backupJson(['--type', 'physical']);
  const dir = join(repo, 'base', record.id);
  const meta = JSON.parse(readFileSync(join(dir, 'backup.json'), 'utf8'));
  assert.is(meta.status, 'complete');
  assert.equal(meta.verification.tool, STREAM_VERIFY_TOOL);
  assert.ok(meta.verification.ok);
  assert.ok(meta.physical.walIncluded);
  assert.match(meta.physical.startLsn, /^[0-9A-F]+\/[0-9A-F]+$/);
  assert.is(meta.server.major, stack.ctx.pg.major);
  assert.ok(meta.sizes.rawBytes > meta.sizes.storedBytes, 'compressed');
  assert.ok(
    record.files.some((f) => f.name === 'base.tar.zst'),
    'zstd by default',
  );
  assert.is(statSync(dir).mode & 0o777, 0o700);
  for (const f of readdirSync(dir)) assert.is(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  assert.ok((await list()).backups.some((b) => b.id === record.id));
  const deep = await runJob('backup:verify', [record.id, '--deep'], stack.env);
  assert.is(deep.code, 0, deep.stdout + deep.stderr);
});

test('a logical backup passes pg_restore --list', async () => {
  await sleep(1100); // ids are per second
  const { record } = await backupJson(['--type', 'logical']);
  const dump = join(repo, 'logical', record.id, 'dump.pgdump');
  const listed = await run(stack.ctx.pg.bin('pg_restore'), ['--list', dump]);
  assert.match(listed.stdout, /TABLE DATA public students/);
  // A partitioned table's rows are dumped per partition, its definition with it.
  assert.match(listed.stdout, /TABLE public attendance_records /);
  assert.match(listed.stdout, /TABLE DATA edupulse_partitions attendance_records_before_\d{4}_\d{2} /);
  assert.match(listed.stdout, /TABLE DATA edupulse_partitions attendance_records_default /);
});

test("a logical drill restores the dump into a scratch database and matches the snapshot's fingerprints", async () => {
  const r = await runJob('drill', ['--logical', '--json'], stack.env);
  const report = JSON.parse(r.stdout);
  assert.is(r.code, 0, JSON.stringify(report.checks));
  assert.match(report.checks[1].detail, /identical to the dump's snapshot/);
  const dbs = await withClient(
    stack.pg,
    async (c) => (await c.query("SELECT datname FROM pg_database WHERE datname LIKE 'edupulse_drill%'")).rows,
  );
  assert.equal(dbs, [], 'the scratch database is dropped');
});

test('fingerprint comparison names what differs', () => {
  const base = { 'public.a': { rows: 2, hash: '10' }, 'public.b': { rows: 1, hash: '5' } };
  assert.equal(compareFingerprints(base, base), []);
  assert.equal(
    compareFingerprints(base, {
      'public.a': { rows: 3, hash: '10' },
      'public.b': { rows: 1, hash: '6' },
      'public.c': { rows: 0, hash: '0' },
    }),
    [
      "public.a has 3 rows, the dump's snapshot had 2",
      'public.b has the same 1 rows count but different contents',
      "public.c was not in the dump's snapshot",
    ],
  );
});

test('bad input exits 2 and changes nothing', async () => {
  const before = JSON.stringify(await list());
  const metrics = () =>
    readdirSync(stack.ctx.paths.metricsDir)
      .map((f) => readFileSync(join(stack.ctx.paths.metricsDir, f), 'utf8'))
      .join('');
  const metricsBefore = existsSync(stack.ctx.paths.metricsDir) ? metrics() : '';
  for (const args of [
    ['--type', 'incremental'],
    ['--keep-physical', '0'],
    ['--keep-physical=-1'],
    ['--keep-physical', '-1'],
    ['--compression', 'rar'],
    ['--max-rate', '0'],
    ['--max-rate', '16k'],
    ['--max-rate', '2048M'],
  ]) {
    const r = await runJob('backup', args, stack.env);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  }
  const bogus = await runJob('backup', ['--type', 'logical'], { ...stack.env, EDUPULSE_REPO_MODE: 'bogus' });
  assert.is(bogus.code, 2, bogus.stderr);
  assert.match(bogus.stderr, /EDUPULSE_REPO_MODE/);
  assert.is(existsSync(stack.ctx.paths.metricsDir) ? metrics() : '', metricsBefore, 'no run recorded');
  const notdir = mkdtempSync(join(tmpdir(), 'edupulse-notdir-'));
  const file = join(notdir, 'repo');
  writeFileSync(file, 'not a directory');
  const r = await runJob('backup', ['--type', 'logical'], { ...stack.env, EDUPULSE_REPO_DIR: file });
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /not a directory/);
  assert.is(readFileSync(file, 'utf8'), 'not a directory');
  rmSync(notdir, { recursive: true, force: true });
  assert.is(JSON.stringify(await list()), before);
});

test('a backup that would leave its filesystem less than the reserve is refused (exit 3) before it starts', async () => {
  // Repositories of their own, on small filesystems: tmpfs (the tests run as root, as CI does).
  const small = mkdtempSync(join(tmpdir(), 'edupulse-small-repo-'));
  const roomy = mkdtempSync(join(tmpdir(), 'edupulse-roomy-repo-'));
  await run('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0700', 'tmpfs', small]);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=512m,mode=0700', 'tmpfs', roomy]);
  try {
    // 64 MB: whatever the backup's size, less than the reserve (64 MB at the least) would stay free.
    const r = await runJob('backup', ['--type', 'logical'], { ...stack.env, EDUPULSE_REPO_DIR: small });
    assert.is(r.code, 3, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      /the backup repository \(.*\) is on a filesystem with [\d.]+ [kMG]?B free; a logical backup of [\d.]+ [kMG]?B of data needs about .* stays free for the server and the WAL archive; no backup was taken/,
    );
    assert.match(r.stderr, /backup:prune/);
    assert.equal(new LocalRepository(small).list(), [], 'no backup');
    assert.equal(new LocalRepository(small).partials(), [], 'nor a partial one');
    // With room, the same backup is taken.
    const ok = await runJob('backup', ['--type', 'logical'], { ...stack.env, EDUPULSE_REPO_DIR: roomy });
    assert.is(ok.code, 0, ok.stdout + ok.stderr);
    assert.is(new LocalRepository(roomy).list('logical').length, 1);
  } finally {
    for (const dir of [small, roomy]) {
      await run('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('a second concurrent run exits 3; kill -9 mid-way leaves no backup; the next run cleans up and succeeds', async () => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(PROJECT_ROOT, 'ops-scripts/backup.ts'), '--type', 'physical', '--max-rate', '32k'],
    { env: { ...process.env, ...stack.env }, stdio: 'ignore' },
  );
  const lock = join(repo, '.backup.lock');
  for (
    let i = 0;
    i < 100 && !readdirSync(join(repo, 'base')).some((d) => !existsSync(join(repo, 'base', d, 'backup.json')));
    i++
  )
    await sleep(100);
  assert.ok(existsSync(lock), 'the first run holds the lock');
  const second = await runJob('backup', ['--type', 'logical'], stack.env);
  assert.is(second.code, 3, second.stderr);
  assert.match(second.stderr, new RegExp(`pid ${child.pid}`));
  await sleep(1000);
  process.kill(child.pid!, 'SIGKILL');
  await new Promise((r) => child.on('exit', r));
  // Everything the killed job started dies with it: pg_basebackup and its forked WAL streamer, their walsenders and slot.
  const leftovers = async () => ({
    processes: readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return (
            readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('pg_basebackup') &&
            !/^State:\s+Z/m.test(readFileSync(`/proc/${p}/status`, 'utf8'))
          );
        } catch {
          return false;
        }
      }).length,
    ...(await withClient(
      stack.pg,
      async (c) =>
        (
          await c.query(`SELECT (SELECT count(*)::int FROM pg_stat_replication WHERE usename = 'edupulse_backup') AS walsenders,
      (SELECT count(*)::int FROM pg_replication_slots WHERE active) AS slots`)
        ).rows[0],
    )),
  });
  let left = await leftovers();
  for (let i = 0; i < 50 && (left.processes || left.walsenders || left.slots); i++) {
    await sleep(100);
    left = await leftovers();
  }
  assert.equal(
    left,
    { processes: 0, walsenders: 0, slots: 0 },
    'no pg_basebackup, walsender or active slot of the killed run',
  );
  const partial = readdirSync(join(repo, 'base')).filter((d) => !existsSync(join(repo, 'base', d, 'backup.json')));
  assert.is(partial.length, 1, 'the killed run left its directory, without backup.json');
  const listed = await list();
  assert.not.ok(
    listed.backups.some((b) => b.id === partial[0]),
    'an unfinished directory is not listed as a backup',
  );
  assert.is(listed.unfinished.length, 1);
  await sleep(1100);
  const next = await runJob('backup', ['--type', 'physical', '--json'], stack.env);
  assert.is(next.code, 0, next.stderr);
  const ps = await run('ps', ['-eo', 'stat=,args='], {});
  assert.not.ok(
    ps.stdout.split('\n').some((l) => !l.startsWith('Z') && /pg_basebackup .*--max-rate=32k/.test(l)),
    'nothing of the killed run is still writing',
  );
  assert.ok(JSON.parse(next.stdout).cleaned.includes(`physical/${partial[0]}`));
  assert.not.ok(existsSync(join(repo, 'base', partial[0]!)));
});

test('a backup interrupted (SIGTERM) mid-transfer removes its partial directory and its lock at once: exit 143', async () => {
  const partials = () =>
    readdirSync(join(repo, 'base')).filter((d) => !existsSync(join(repo, 'base', d, 'backup.json')));
  const lock = join(repo, '.backup.lock');
  const r = await interruptJob('backup', ['--type', 'physical', '--max-rate', '32k'], stack.env, () =>
    partials().some((d) => readdirSync(join(repo, 'base', d)).length > 0),
  );
  assert.is(r.code, 143, r.stderr);
  assert.match(r.stderr, /backup: interrupted by SIGTERM; undoing what it started/);
  assert.equal(partials(), [], 'no partial directory waits for the next run');
  assert.not.ok(existsSync(lock), 'the lock went with the job');
  const ps = await run('ps', ['-eo', 'stat=,args='], {});
  assert.not.ok(
    ps.stdout.split('\n').some((l) => !l.startsWith('Z') && /pg_basebackup .*--max-rate=32k/.test(l)),
    'pg_basebackup went with the job',
  );
});

test("a job run by a parent that is stopped (the scheduler's way) gets the SIGTERM, undoes its work, and is waited for", async () => {
  const partials = () =>
    readdirSync(join(repo, 'base')).filter((d) => !existsSync(join(repo, 'base', d, 'backup.json')));
  const parent = spawn(
    process.execPath,
    ['--import', 'tsx', join(PROJECT_ROOT, 'test/fixtures/job-runner.ts'), 'backup', '--max-rate', '32k'],
    { env: { ...process.env, ...stack.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  parent.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  for (let i = 0; i < 200 && !partials().some((d) => readdirSync(join(repo, 'base', d)).length > 0); i++)
    await sleep(50);
  assert.ok(partials().length > 0, 'the backup had started');
  parent.kill('SIGTERM');
  const code = await new Promise((r) => parent.on('close', r));
  assert.is(code, 143);
  assert.match(out, /backup: interrupted by SIGTERM; undoing what it started/);
  assert.match(out, /job exited 143/, 'the parent waited for the job to end');
  assert.equal(partials(), [], 'the job removed its partial directory');
  assert.not.ok(existsSync(join(repo, '.backup.lock')));
});

test('one flipped byte in a finished backup: verify exits 1 naming the file', async () => {
  const { backups } = await list();
  const victim = backups.find((b) => b.kind === 'physical')!;
  const file = join(repo, 'base', victim.id, 'base.tar.zst');
  const fd = openSync(file, 'r+');
  const buf = Buffer.alloc(1);
  readSync(fd, buf, 0, 1, 1000);
  buf[0] = buf[0]! ^ 0xff;
  writeSync(fd, buf, 0, 1, 1000);
  closeSync(fd);
  const r = await runJob('backup:verify', [victim.id], stack.env);
  assert.is(r.code, 1);
  assert.match(r.stdout, /base\.tar\.zst does not match its SHA-256 checksum/);
  buf[0] = buf[0]! ^ 0xff;
  const fd2 = openSync(file, 'r+');
  writeSync(fd2, buf, 0, 1, 1000);
  closeSync(fd2);
  assert.is((await runJob('backup:verify', [victim.id], stack.env)).code, 0);
});

test('archiving into an unwritable archive fails visibly; once fixed the backlog archives with no gap', async () => {
  const wal = join(repo, 'wal');
  const archiver = () =>
    withClient(
      stack.pg,
      async (c) =>
        (
          await c.query(`SELECT failed_count::int AS failed,
      (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready')::int AS waiting FROM pg_stat_archiver`)
        ).rows[0] as { failed: number; waiting: number },
    );
  chmodSync(wal, 0o000);
  try {
    await withClient(stack.pg, (c) => c.query('CREATE TEMP TABLE t AS SELECT 1; SELECT pg_switch_wal()'));
    for (let i = 0; i < 50 && (await archiver()).failed === 0; i++) await sleep(200);
    const status = JSON.parse((await runJob('status', ['--json'], stack.env)).stdout);
    assert.ok(status.postgres.archiver.failedCount > 0, 'failed count grows');
    assert.ok(status.postgres.archiver.waiting > 0, 'segments wait');
    assert.match((await runJob('status', [], stack.env)).stdout, /[1-9]\d* failed/);
  } finally {
    chmodSync(wal, 0o700);
  }
  // A new segment wakes the archiver, which then works through the backlog.
  await withClient(stack.pg, (c) => c.query('CREATE TEMP TABLE t AS SELECT 1; SELECT pg_switch_wal()'));
  for (let i = 0; i < 150 && (await archiver()).waiting > 0; i++) await sleep(200);
  assert.is((await archiver()).waiting, 0, 'the backlog is archived');
  const r = await runJob('backup:verify', ['--all'], stack.env);
  assert.is(r.code, 0, r.stdout + r.stderr);
});

test('retention waits while a restore reads the repository: backup:prune exits 3 naming it, a backup defers its retention', async () => {
  for (let i = 0; i < 2; i++) {
    await sleep(1100);
    await backupJson(['--type', 'physical', '--keep-physical', '99']);
  }
  const ids = () => list().then((l) => l.backups.filter((b) => b.kind === 'physical').map((b) => b.id));
  const before = await ids();
  // A directory the restore makes itself (one made here, 0700 root, would be out of the postgres user's reach).
  const data = join(tmpdir(), `edupulse-reader-${process.pid}-${Date.now()}`);
  const reader = spawn(
    process.execPath,
    [join(PROJECT_ROOT, 'bin', 'edupulse-db.js'), 'restore', '--target', 'immediate', '--to', data, '--start'],
    { env: { ...process.env, ...stack.env }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let readerErr = '';
  reader.stderr!.setEncoding('utf8').on('data', (d: string) => (readerErr += d));
  const ended = new Promise<number | null>((r) => reader.on('close', r));
  try {
    for (let i = 0; i < 1000 && !existsSync(join(data, 'PG_VERSION')); i++) await sleep(10);
    reader.kill('SIGSTOP'); // mid-restore, as long as the test needs
    assert.ok(existsSync(join(data, 'PG_VERSION')), `the restore is extracting: ${readerErr}`);
    const prune = await runJob('backup:prune', ['--keep-physical', '1'], stack.env);
    assert.is(prune.code, 3, `${prune.stdout}${prune.stderr}\nrestore: ${readerErr}`);
    assert.match(prune.stderr, new RegExp(`being read by restore \\(pid ${reader.pid},`));
    const backup = await runJob('backup', ['--type', 'physical', '--keep-physical', '1', '--json'], stack.env);
    assert.is(backup.code, 0, backup.stderr);
    assert.match(JSON.parse(backup.stdout).pruned.deferred, new RegExp(`restore \\(pid ${reader.pid},`));
    const after = await ids();
    assert.ok(
      before.every((id) => after.includes(id)),
      'no backup removed while the restore reads',
    );
    reader.kill('SIGCONT');
    assert.is(await ended, 0, 'the restore finishes');
    const pruned = await runJob('backup:prune', ['--keep-physical', '1', '--json'], stack.env);
    assert.is(pruned.code, 0, pruned.stderr);
    assert.ok(JSON.parse(pruned.stdout).removed.length >= 2, 'with the restore done, retention applies');
  } finally {
    reader.kill('SIGCONT');
    await ended;
    await runJob('stop', [data, '--remove'], stack.env);
    rmSync(data, { recursive: true, force: true });
  }
});

test('retention keep 2 after 4 physical backups: 2 remain, older WAL goes, and the oldest kept still restores', async () => {
  for (let i = 0; i < 4; i++) {
    await sleep(1100);
    await withClient(stack.pg, (c) => c.query('SELECT pg_switch_wal()'));
    await backupJson(['--type', 'physical', '--keep-physical', '99']);
  }
  const before = (await list()).backups.filter((b) => b.kind === 'physical');
  assert.ok(before.length >= 4);
  const dry = await runJob('backup:prune', ['--keep-physical', '2', '--dry-run', '--json'], stack.env);
  assert.is(dry.code, 0, dry.stderr);
  assert.is(
    JSON.parse(dry.stdout).removed.filter((x: { kind: string }) => x.kind === 'physical').length,
    before.length - 2,
  );
  assert.is(
    (await list()).backups.filter((b) => b.kind === 'physical').length,
    before.length,
    '--dry-run deletes nothing',
  );
  const pruned = await runJob('backup:prune', ['--keep-physical', '2'], stack.env);
  assert.is(pruned.code, 0, pruned.stderr);
  const kept = (await list()).backups.filter((b) => b.kind === 'physical');
  assert.equal(
    kept.map((b) => b.id),
    before.slice(-2).map((b) => b.id),
  );
  const oldestStart = kept[0]!.physical!.startSegment;
  const segments = [...walIndex(readdirSync(join(repo, 'wal'))).keys()].filter((f) => /^[0-9A-F]{24}$/.test(f));
  assert.ok(
    segments.every((f) => f.slice(8) >= oldestStart.slice(8)),
    'no segment older than the oldest kept start',
  );
  assert.ok(segments.includes(oldestStart) || segments.some((f) => f.slice(8) > oldestStart.slice(8)));
  assert.is((await runJob('backup:verify', ['--all'], stack.env)).code, 0);

  // Smoke restore of the oldest kept backup: extract, start, query.
  const target = mkdtempSync(join(tmpdir(), 'edupulse-restore-'));
  ensurePrivateDir(target, stack.ctx.as);
  const data = join(target, 'data');
  const repository = new LocalRepository(repo, stack.ctx.as);
  await extractBaseBackup(repository.backupDir('physical', kept[0]!.id), data, { as: stack.ctx.as });
  const port = await freePort();
  writeFileSync(
    join(data, 'edupulse.conf'),
    `port = ${port}\narchive_mode = off\nunix_socket_directories = '${target}'\n`,
  );
  const spec = { ...clusterSpec(stack.ctx), dataDir: data, socketDir: target, logFile: join(target, 'log'), port };
  try {
    await startCluster(spec);
    const n = await withClient(
      { ...stack.pg, port },
      async (c) => (await c.query('SELECT count(*)::int AS n FROM students')).rows[0].n,
    );
    assert.is(n, 300);
  } finally {
    await stopCluster(spec, 'immediate').catch(() => {});
    rmSync(target, { recursive: true, force: true });
  }
});

test('metrics are written as Prometheus text for each kind', () => {
  const text = readFileSync(join(stack.ctx.paths.metricsDir, 'edupulse_backup_physical.prom'), 'utf8');
  assert.match(text, /^edupulse_backup_last_success_timestamp_seconds\{kind="physical"\} \d+(\.\d+)?$/m);
  assert.match(text, /^edupulse_backup_verified\{kind="physical"\} 1$/m);
  assert.match(text, /^edupulse_backup_last_run_success\{kind="physical"\} 1$/m);
});

test.run();
