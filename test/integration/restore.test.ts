// Point-in-time restore and drills against a live cluster written to
// continuously, with every row's commit window recorded.
import {
  chmodSync,
  chownSync,
  copyFileSync,
  symlinkSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeSync,
  closeSync,
  writeFileSync,
  utimesSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createServer } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { withClient, type PgConfig } from '../../ops-scripts/lib/db.ts';
import { archiveUpToNow } from '../../ops-scripts/lib/restore/archive-now.ts';
import { writeCanary } from '../../ops-scripts/lib/restore/restore-points.ts';
import { restoreLockPath } from '../../ops-scripts/lib/restore/restore.ts';
import { run } from '../../ops-scripts/lib/run.ts';
import { interruptJob, runJob, runJobOnTerminal } from '../cli.ts';
import { freePort, logged, startTestStack, tempStateDir, type TestStack } from '../harness.ts';

let stack: TestStack;
let repo = '';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A probe row: inserted at `from` (server clock), committed by `to`, both in microseconds as the server has them.
 * A Date would truncate them to the millisecond: a row committed 0.3 ms after a target and seen done 0.7 ms after it
 * would read as committed by the target, which recovery rightly leaves out.
 */
interface Probe {
  id: number;
  from: bigint;
  to: bigint;
}
const MICROS = '(extract(epoch FROM clock_timestamp()) * 1000000)::bigint::text';
const probes: Probe[] = [];
let writing = false;

async function writer(): Promise<void> {
  await withClient(stack.pg, async (c) => {
    while (writing) {
      const { rows } = await c.query(`INSERT INTO probe DEFAULT VALUES RETURNING id, ${MICROS} AS t`);
      const after = (await c.query(`SELECT ${MICROS} AS t`)).rows[0].t as string;
      probes.push({ id: rows[0].id, from: BigInt(rows[0].t), to: BigInt(after) });
      await sleep(30);
    }
  });
}

/**
 * Rows committed by the target are present, rows begun after it absent; the few in flight at it are not judged.
 * `target` is in milliseconds; a mark's time may have been cut to them, so "after" starts at the next one.
 */
async function assertExact(conn: PgConfig, target: number, label: string): Promise<void> {
  const ids = new Set(
    await withClient(conn, async (c) => (await c.query('SELECT id FROM probe')).rows.map((r) => r.id as number)),
  );
  const t = BigInt(target) * 1000n;
  const before = probes.filter((p) => p.to <= t);
  const after = probes.filter((p) => p.from >= t + 1000n);
  assert.ok(before.length > 0 && after.length > 0, `${label}: rows on both sides of the target`);
  assert.equal(
    before.filter((p) => !ids.has(p.id)).map((p) => p.id),
    [],
    `${label}: rows committed before the target are present`,
  );
  assert.equal(
    after.filter((p) => ids.has(p.id)).map((p) => p.id),
    [],
    `${label}: rows committed after the target are absent`,
  );
}

function scratchProcesses(path: string): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        return cmd.includes(path) ? [cmd] : [];
      } catch {
        return [];
      }
    });
}

async function stopKept(dataDir: string): Promise<void> {
  await run(stack.ctx.pg.bin('pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-s'], {
    as: stack.ctx.as,
    nothrow: true,
  });
  rmSync(dataDir, { recursive: true, force: true });
}

/** `restore --target-time` into `to`, started; its JSON report (the restore must succeed). */
async function restoreStarted(target: Date | string, to: string) {
  const time = typeof target === 'string' ? target : target.toISOString();
  const r = await runJob('restore', ['--target-time', time, '--to', to, '--start', '--json'], stack.env);
  assert.is(r.code, 0, r.stdout + r.stderr);
  return JSON.parse(r.stdout);
}

/** A restore's data directory `to` (in its own temp state directory): stopped, and both removed. */
async function discardRestore(to: string): Promise<void> {
  await stopKept(to);
  rmSync(dirname(to), { recursive: true, force: true });
}

/** A probe row committed now; its id. */
const insertProbe = () =>
  withClient(
    stack.pg,
    async (c) => (await c.query('INSERT INTO probe DEFAULT VALUES RETURNING id')).rows[0].id as number,
  );

/** The live server's WAL insert position. */
const insertLsn = () =>
  withClient(
    stack.pg,
    async (c) => (await c.query('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l as string,
  );

/** `fn` with autovacuum off on the live server (nothing commits behind the test's back, ANALYZE included). */
async function withoutAutovacuum(fn: () => Promise<void>): Promise<void> {
  const set = (sql: string) =>
    withClient(stack.pg, async (c) => {
      await c.query(sql);
      await c.query('SELECT pg_reload_conf()');
    });
  await set('ALTER SYSTEM SET autovacuum = off');
  try {
    await fn();
  } finally {
    await set('ALTER SYSTEM RESET autovacuum');
  }
}

let backupEnded = 0;
let mark = { name: 'mid-run', time: 0 };
let end = 0;

test.before(
  logged(async () => {
    stack = await startTestStack({ redis: true });
    repo = stack.ctx.paths.repoDir;
    // Made as a migration would make it (by the owner), so the declared grants cover it and the roles audit stays clean.
    const owner = stack.owner();
    await withClient(owner, (c) =>
      c.query('CREATE TABLE probe (id serial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())'),
    );
    await writeCanary(stack.pg, 'test-start', 'before');
    writing = true;
    const w = writer();
    await sleep(800);
    const backup = await runJob('backup', ['--type', 'physical', '--json'], stack.env);
    assert.is(backup.code, 0, backup.stderr);
    backupEnded = Date.parse(JSON.parse(backup.stdout).record.physical.endedAt);
    await sleep(1500);
    await withClient(stack.pg, (c) => c.query('SELECT pg_switch_wal()'));
    await sleep(1000);
    const marked = await runJob('backup:mark', [mark.name, '--json'], stack.env);
    assert.is(marked.code, 0, marked.stderr);
    mark.time = Date.parse(JSON.parse(marked.stdout).time);
    await sleep(1000);
    writing = false;
    await w;
    end = Date.now();
    await withClient(stack.pg, (c) => c.query('INSERT INTO probe DEFAULT VALUES; SELECT pg_switch_wal()'));
    await sleep(500);
  }),
);
test.after(async () => {
  writing = false;
  await stack?.stop();
});

const iso = (ms: number) => new Date(ms).toISOString();

test('a target before the backup ended is refused (exit 2), naming the oldest backup; a mistyped drill records nothing', async () => {
  const history = join(repo, 'drill-history.md');
  const metrics = join(stack.ctx.paths.metricsDir, 'edupulse_drill.prom');
  const before = [history, metrics].map((f) => (existsSync(f) ? readFileSync(f, 'utf8') : 'absent'));
  for (const args of [
    ['--target-time', iso(backupEnded - 1500)],
    ['--backup', '19990101T000000Z'],
    ['--target-time', '2026-02-30T10:00:00Z'],
  ]) {
    const r = await runJob('drill', args, stack.env);
    assert.is(r.code, 2, `drill ${args.join(' ')} is bad input: ${r.stderr}`);
  }
  assert.equal(
    [history, metrics].map((f) => (existsSync(f) ? readFileSync(f, 'utf8') : 'absent')),
    before,
    'no failed drill recorded, no false page',
  );
  const direct = await runJob(
    'restore',
    ['--target-time', iso(backupEnded - 1500), '--to', join(tmpdir(), 'never-made')],
    stack.env,
  );
  assert.is(direct.code, 2, direct.stderr);
  assert.match(direct.stderr, /before the end of the oldest backup/);
  assert.not.ok(existsSync(join(tmpdir(), 'never-made')));
});

for (const [label, at] of [
  ['just after the backup', () => backupEnded + 300],
  ['later', () => Math.round((backupEnded + mark.time) / 2) + 700],
] as const) {
  test(`drill to a target ${label}: passes, and holds exactly the rows committed by then`, async () => {
    const target = at();
    const r = await runJob('drill', ['--target-time', iso(target), '--keep', '--json'], stack.env);
    const report = JSON.parse(r.stdout);
    assert.is(r.code, 0, JSON.stringify(report.checks, null, 1));
    assert.ok(report.passed);
    assert.ok(report.rpoSeconds >= 0);
    assert.ok(report.rto.extractSeconds > 0 && report.rto.verifySeconds > 0);
    assert.ok(
      report.checks.some(
        (c: { name: string; status: string }) => c.name.startsWith('structural') && c.status === 'passed',
      ),
    );
    try {
      await assertExact({ ...stack.pg, port: report.kept.port }, target, label);
    } finally {
      await stopKept(report.kept.dataDir);
    }
    assert.equal(scratchProcesses(report.kept.dataDir), []);
  });
}

test('a drill to a time with no canary before it is proven exact by the archived WAL, and says so', async () => {
  await withClient(stack.pg, (c) => c.query('DELETE FROM edupulse_meta.drill_canaries'));
  const target = Math.round((backupEnded + mark.time) / 2);
  const r = await runJob('drill', ['--target-time', iso(target), '--keep', '--json'], stack.env);
  const report = JSON.parse(r.stdout);
  try {
    assert.is(r.code, 0, JSON.stringify(report.checks, null, 1));
    const byName = (n: string) => report.checks.find((c: { name: string }) => c.name.startsWith(n));
    assert.is(byName('data exactness (canaries)').status, 'skipped');
    assert.match(byName('data exactness (canaries)').detail, /not proven by canaries/);
    assert.is(byName('data exactness (WAL evidence)').status, 'passed');
    assert.match(
      byName('data exactness (WAL evidence)').detail,
      /the last transaction replayed is the last the archived WAL holds at or before the target .*s before it\); the first after it .* was not replayed/,
    );
    await assertExact({ ...stack.pg, port: report.kept.port }, target, 'WAL evidence');
  } finally {
    if (report.kept) await stopKept(report.kept.dataDir);
  }
});

test('restore to a named restore point holds exactly the rows committed before the mark', async () => {
  const to = join(tempStateDir(), 'data');
  const r = await runJob('restore', ['--target-name', mark.name, '--to', to, '--start', '--json'], stack.env);
  assert.is(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  try {
    assert.ok(res.promoted);
    await assertExact({ ...stack.pg, port: res.port }, mark.time, 'named restore point');
    const restoredConf = readFileSync(join(to, 'edupulse.conf'), 'utf8');
    assert.match(restoredConf, /archive_mode = 'off'/, 'a restored cluster never archives into the live repository');
  } finally {
    await discardRestore(to);
  }
  assert.not.match(r.stderr, /extract|replay|\r/, 'no progress with --json or without a terminal');
});

test('a restore not started holds the WAL it replays: started later with no archive to read, it stops exactly at its target', async () => {
  const to = join(tempStateDir(), 'data');
  try {
    const r = await runJobOnTerminal('restore', ['--target-time', iso(mark.time), '--to', to], stack.env);
    assert.is(r.code, 0, r.stdout);
    assert.match(r.stdout, /\rcopy WAL +\[#+\] 100% [\d,]+ bytes/, 'a bar for the WAL copied');
    assert.match(r.stdout, /the WAL it replays is in its pg_wal \([1-9]\d* files, /, 'it says what it copied');
    const res = { port: Number(/^port = '?(\d+)/m.exec(readFileSync(join(to, 'edupulse.conf'), 'utf8'))![1]) };
    // As if retention had removed the archived WAL since: every fetch fails (ALTER SYSTEM's file wins over edupulse.conf).
    writeFileSync(join(to, 'postgresql.auto.conf'), "restore_command = 'false'\n", { flag: 'a' });
    const started = await run(
      stack.ctx.pg.bin('pg_ctl'),
      ['start', '-D', to, '-w', '-t', '120', '-s', '-l', join(to, 'later.log')],
      { as: stack.ctx.as, nothrow: true },
    );
    const log = () => (existsSync(join(to, 'later.log')) ? readFileSync(join(to, 'later.log'), 'utf8') : '');
    assert.is(started.code, 0, `the restored cluster starts: ${log()}`);
    const conn = { ...stack.pg, port: res.port };
    for (let i = 0; i < 600; i++) {
      const recovering = await withClient(
        conn,
        async (c) => (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r,
      );
      if (!recovering) break;
      await sleep(100);
    }
    assert.match(log(), /recovery stopping before commit|recovery stopping after/, 'it stopped at the target');
    await assertExact(conn, mark.time, 'restored later, without the archive');
  } finally {
    await discardRestore(to);
  }
});

test('on a terminal, restore shows its phases with progress: bytes extracted, WAL replayed', async () => {
  const to = join(tempStateDir(), 'data');
  const r = await runJobOnTerminal('restore', ['--target-name', mark.name, '--to', to, '--start'], stack.env);
  try {
    assert.is(r.code, 0, r.stdout);
    assert.match(r.stdout, /\rextract +\[[#.]+\] +\d+% [\d,]+ bytes/, 'an extract bar counting bytes');
    assert.match(r.stdout, /\rreplay +\[#+\] 100% [\d,]+ WAL bytes/, 'a replay bar that ends at the target');
    assert.ok(r.stdout.indexOf('extract') < r.stdout.indexOf('replay'), 'extract, then replay');
    assert.match(r.stdout, /restored backup \S+ .* target restore point/);
  } finally {
    await discardRestore(to);
  }
});

test('a default drill places its own target, passes, appends history and metrics, and leaves nothing behind', async () => {
  const r = await runJob('drill', ['--json'], stack.env);
  const report = JSON.parse(r.stdout);
  assert.is(r.code, 0, JSON.stringify(report.checks, null, 1));
  assert.is(report.kept, undefined);
  assert.not.ok(existsSync(join(stack.ctx.paths.root, 'drills', report.id)));
  assert.equal(scratchProcesses(join(stack.ctx.paths.root, 'drills')), []);
  const record = JSON.parse(readFileSync(join(repo, 'drills', `${report.id}.json`), 'utf8'));
  assert.equal(
    { id: record.id, passed: record.passed, target: record.target },
    { id: report.id, passed: true, target: report.target },
    'the drill is recorded as JSON',
  );
  const history = readFileSync(join(repo, 'drill-history.md'), 'utf8');
  assert.match(
    history,
    new RegExp(`\\| ${report.startedAt} \\| ${report.target} \\| ${report.backupId} \\|.*\\| passed \\|`),
  );
  const metrics = readFileSync(join(stack.ctx.paths.metricsDir, 'edupulse_drill.prom'), 'utf8');
  assert.match(metrics, /^edupulse_drill_last_run_success 1$/m);
  assert.match(metrics, /^edupulse_drill_rto_seconds \d/m);
});

test('kept clusters: status lists them, stop stops one as its OS user, drill --cleanup removes them; the live cluster is refused', async () => {
  const kept = JSON.parse((await runJob('drill', ['--keep', '--json'], stack.env)).stdout).kept as {
    dataDir: string;
    port: number;
  };
  try {
    const status = JSON.parse((await runJob('status', ['--json'], stack.env)).stdout);
    assert.ok(
      status.keptDrills.some(
        (k: { dataDir: string; running: boolean; port: number }) =>
          k.dataDir === kept.dataDir && k.running && k.port === kept.port,
      ),
      JSON.stringify(status.keptDrills),
    );
    const stopped = await runJob('stop', [kept.dataDir, '--json'], stack.env);
    assert.is(stopped.code, 0, stopped.stderr);
    assert.is(JSON.parse(stopped.stdout).stopped, true);
    assert.equal(scratchProcesses(kept.dataDir), []);
    const live = await runJob('stop', [stack.ctx.paths.dataDir], stack.env);
    assert.is(live.code, 3, live.stderr);
    assert.is((await runJob('stop', [join(tmpdir(), 'no-such-cluster')], stack.env)).code, 2);
    const cleanup = await runJob('drill', ['--cleanup', '--json'], stack.env);
    assert.is(cleanup.code, 0, cleanup.stderr);
    assert.ok(JSON.parse(cleanup.stdout).removed.includes(kept.dataDir));
    assert.not.ok(existsSync(kept.dataDir));
  } finally {
    if (existsSync(kept.dataDir)) await stopKept(kept.dataDir);
  }
});

test('restore refuses a non-empty directory and the live data directory (exit 3)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edupulse-full-'));
  writeFileSync(join(dir, 'precious.txt'), 'keep me');
  const r = await runJob('restore', ['--target', 'immediate', '--to', dir], stack.env);
  assert.is(r.code, 3, r.stderr);
  assert.is(readFileSync(join(dir, 'precious.txt'), 'utf8'), 'keep me');
  const live = await runJob('restore', ['--target', 'immediate', '--to', stack.ctx.paths.dataDir], stack.env);
  assert.is(live.code, 3, live.stderr);
  assert.match(live.stderr, /live cluster's data directory/);
  // Inside or around a live directory, also through a symlink: refused before anything is written.
  const link = join(dir, 'to-repo');
  symlinkSync(join(repo, 'wal'), link);
  for (const [to, what] of [
    [join(stack.ctx.paths.dataDir, 'restored'), /inside the live cluster's data directory/],
    [join(repo, 'wal', 'restored'), /inside the (backup repository|WAL archive)/],
    [join(link, 'x'), /inside the (backup repository|WAL archive)/],
    [stack.ctx.paths.root, /contains the live cluster's data directory/],
  ] as const) {
    const walBefore = readdirSync(join(repo, 'wal')).length;
    const r = await runJob('restore', ['--target', 'immediate', '--to', to], stack.env);
    assert.is(r.code, 3, `${to}: ${r.stderr}`);
    assert.match(r.stderr, what);
    assert.not.ok(existsSync(to) && to !== stack.ctx.paths.root, `${to} not created`);
    assert.is(readdirSync(join(repo, 'wal')).length, walBefore);
  }
  rmSync(dir, { recursive: true, force: true });
});

test('bad input: each with a clear message, exit 2, nothing left behind', async () => {
  const to = join(tmpdir(), `edupulse-bad-${process.pid}`);
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  const busyPort = String((busy.address() as { port: number }).port);
  const privateDir = mkdtempSync(join(tmpdir(), 'edupulse-private-'));
  const cases: Array<[string[], RegExp]> = [
    [['--target-time', 'yesterday-ish'], /is not a time/],
    [['--target-time', '2026-11-24 12:00:00'], /no time zone/],
    [['--target-time', '2000-02-30T00:00:00Z'], /not a valid time/],
    [['--target-time', iso(Date.now() + 3_600_000)], /in the future/],
    [['--target-time', iso(end - 100_000_000)], /before the end of the oldest backup/],
    [['--target', 'immediate', '--backup', '19990101T000000Z'], /no complete physical backup with id/],
    [['--target', 'immediate', '--port', busyPort], /already in use/],
    [['--target-name', 'never-marked'], /no restore point named/],
    [['--target-lsn', 'zz'], /not an LSN/],
    ...(stack.ctx.as
      ? [[['--target', 'immediate', '--to', join(privateDir, 'x')], /not reachable/] as [string[], RegExp]]
      : []),
  ];
  try {
    for (const [args, message] of cases) {
      const r = await runJob('restore', args.includes('--to') ? args : [...args, '--to', to], stack.env);
      assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.not.ok(existsSync(to), `${args.join(' ')} left ${to} behind`);
    }
  } finally {
    busy.close();
    rmSync(privateDir, { recursive: true, force: true });
  }
});

test('a drill from a corrupted backup exits 1, names the cause, and leaves no scratch server nor directory', async () => {
  const id = readdirSync(join(repo, 'base'))
    .filter((d) => !d.startsWith('.'))
    .sort()[0]!;
  const file = join(repo, 'base', id, 'base.tar.zst');
  copyFileSync(file, `${file}.good`);
  const fd = openSync(file, 'r+');
  const buf = Buffer.alloc(64);
  readSync(fd, buf, 0, 64, 4096);
  for (let i = 0; i < 64; i++) buf[i] = buf[i]! ^ 0x5a;
  writeSync(fd, buf, 0, 64, 4096);
  closeSync(fd);
  try {
    const r = await runJob('drill', ['--json'], stack.env);
    const report = JSON.parse(r.stdout);
    assert.is(r.code, 1);
    assert.match(JSON.stringify(report.checks), /base\.tar\.zst not matching the SHA-256 recorded in backup\.json/);
    assert.not.ok(existsSync(join(stack.ctx.paths.root, 'drills', report.id)));
    assert.equal(scratchProcesses(join(stack.ctx.paths.root, 'drills')), []);
  } finally {
    copyFileSync(`${file}.good`, file);
    rmSync(`${file}.good`);
  }
});

test('a restore interrupted (SIGTERM) while its server replays stops that server, removes the directory, keeps the log: exit 143', async () => {
  const to = join(tempStateDir(), 'data');
  try {
    const r = await interruptJob('restore', ['--target', 'immediate', '--to', to, '--start'], stack.env, () =>
      existsSync(join(to, 'postmaster.pid')),
    );
    assert.is(r.code, 143, r.stderr);
    assert.match(r.stderr, /restore: interrupted by SIGTERM; undoing what it started/);
    assert.not.ok(existsSync(to), 'the half-made data directory is gone');
    assert.equal(scratchProcesses(to), [], 'no server left running in it');
    const kept = /the server's log is kept in (\S+)/.exec(r.stderr)?.[1];
    assert.ok(kept && existsSync(kept), `the log is kept: ${r.stderr}`);
    assert.equal(
      readdirSync(stack.ctx.paths.root).filter((f) => f.endsWith('-spool')),
      [],
      'no WAL prefetch spool left',
    );
  } finally {
    await discardRestore(to);
  }
});

test('a restore onto a filesystem without room for the backup is refused (exit 3) before anything is extracted', async () => {
  // A small filesystem of its own: a 16 MB tmpfs (the tests run as root, as CI does).
  const mnt = mkdtempSync(join(tmpdir(), 'edupulse-small-fs-'));
  await run('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=1777', 'tmpfs', mnt]);
  try {
    const r = await runJob('restore', ['--target', 'immediate', '--to', join(mnt, 'data')], stack.env);
    assert.is(r.code, 3, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`${join(mnt, 'data')} is on a filesystem with [\\d.]+ [kM]?B free; restoring backup \\S+ needs about`),
    );
    assert.match(r.stderr, /nothing was extracted/);
    assert.equal(readdirSync(mnt), [], 'nothing written there');
    // A target of now would have the live server archive its current WAL first: refused before that too. Counted
    // by the server's own statement statistics, not by its segment, which archive_timeout may switch meanwhile.
    const switches = async () =>
      withClient(
        { ...stack.pg, database: 'postgres' },
        async (c) =>
          (
            await c.query(
              "SELECT coalesce(sum(calls), 0)::int AS n FROM pg_stat_statements WHERE query LIKE '%pg_switch_wal()%' AND query NOT LIKE '%pg_stat_statements%'",
            )
          ).rows[0].n as number,
      );
    const before = await switches();
    const now = await runJob(
      'restore',
      ['--target-time', new Date().toISOString(), '--to', join(mnt, 'data')],
      stack.env,
    );
    assert.is(now.code, 3, now.stdout + now.stderr);
    assert.match(now.stderr, /nothing was extracted/);
    assert.is(await switches(), before, 'the live server was not asked to switch its WAL segment');
    assert.equal(readdirSync(mnt), []);
  } finally {
    await run('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
});

test('a second restore into the directory a restore is writing is refused (exit 3), naming the first', async () => {
  const to = join(stack.ctx.paths.root, 'contended', 'data');
  // A restore in progress on this host: its lock, held by a live process (this one), the directory still empty.
  const lock = restoreLockPath(to);
  writeFileSync(
    lock,
    JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), job: `a restore into ${to}` }),
  );
  try {
    const r = await runJob('restore', ['--target', 'immediate', '--to', to], stack.env);
    assert.is(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`a restore into ${to} is already running \\(pid ${process.pid}`));
    assert.not.ok(existsSync(to), 'nothing written');
  } finally {
    rmSync(lock, { force: true });
  }
  // The lock released (or its holder gone), a restore goes ahead, and leaves no lock behind.
  const r = await runJob('restore', ['--target', 'immediate', '--to', to], stack.env);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.not.ok(existsSync(lock), 'the lock is released');
  await discardRestore(to);
});

test('a drill with the live server unreachable fails before it starts, says where, and records nothing', async () => {
  const history = join(repo, 'drill-history.md');
  const before = existsSync(history) ? readFileSync(history, 'utf8') : '';
  const port = String(await freePort());
  const r = await runJob('drill', [], { ...stack.env, DATABASE_URL: `postgres://nobody@127.0.0.1:${port}/edupulse` });
  assert.is(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(`no drill ran and none is recorded: .*127\\.0\\.0\\.1:${port}: nothing is accepting connections`),
  );
  assert.match(r.stderr, /hint: `npm run status`/);
  assert.is(existsSync(history) ? readFileSync(history, 'utf8') : '', before, 'no failed drill in the history');
});

test('a drill interrupted (SIGINT) once its scratch server runs leaves no scratch cluster and records nothing: exit 130', async () => {
  const drills = join(stack.ctx.paths.root, 'drills');
  const history = join(repo, 'drill-history.md');
  // Earlier tests' kept drills leave their empty <id> directories (stopKept removes the data directory only).
  const scratchDirs = () => (existsSync(drills) ? readdirSync(drills).sort() : []);
  const dirsBefore = scratchDirs();
  const before = existsSync(history) ? readFileSync(history, 'utf8') : '';
  const recorded = () => (existsSync(join(repo, 'drills')) ? readdirSync(join(repo, 'drills')).sort() : []);
  const records = recorded();
  const started = () =>
    existsSync(drills) && readdirSync(drills).some((d) => existsSync(join(drills, d, 'data', 'postmaster.pid')));
  const r = await interruptJob('drill', [], stack.env, started, 'SIGINT');
  assert.is(r.code, 130, r.stderr);
  assert.match(r.stderr, /drill: interrupted by SIGINT; undoing what it started/);
  assert.equal(scratchDirs(), dirsBefore, 'no scratch directory left');
  assert.equal(scratchProcesses(drills), [], 'no scratch server left');
  assert.is(existsSync(history) ? readFileSync(history, 'utf8') : '', before, 'no drill recorded in the history');
  assert.equal(recorded(), records, 'no drill record written');
  // Its lock went with it: the next drill runs.
  const next = await runJob('drill', ['--json'], stack.env);
  assert.is(next.code, 0, next.stderr);
});

test('a drill with a missing WAL segment exits 1 naming the segment, and leaves nothing behind', async () => {
  await withClient(stack.pg, (c) => c.query('INSERT INTO probe DEFAULT VALUES; SELECT pg_switch_wal()'));
  await sleep(300);
  await withClient(stack.pg, (c) => c.query('INSERT INTO probe DEFAULT VALUES; SELECT pg_switch_wal()'));
  await sleep(500);
  const wal = join(repo, 'wal');
  const segments = readdirSync(wal)
    .filter((f) => /^[0-9A-F]{24}\.zst$/.test(f))
    .sort();
  const victim = segments[segments.length - 2]!;
  const segment = victim.slice(0, 24);
  mkdirSync(join(tmpdir(), 'edupulse-wal-aside'), { recursive: true });
  copyFileSync(join(wal, victim), join(tmpdir(), 'edupulse-wal-aside', victim));
  rmSync(join(wal, victim));
  try {
    const r = await runJob('drill', ['--json'], stack.env);
    const report = JSON.parse(r.stdout);
    assert.is(r.code, 1);
    assert.match(JSON.stringify(report.checks), new RegExp(segment));
    assert.not.ok(existsSync(join(stack.ctx.paths.root, 'drills', report.id)));
    assert.equal(scratchProcesses(join(stack.ctx.paths.root, 'drills')), []);
  } finally {
    copyFileSync(join(tmpdir(), 'edupulse-wal-aside', victim), join(wal, victim));
    if (stack.ctx.as) chownSync(join(wal, victim), stack.ctx.as.uid, stack.ctx.as.gid);
    rmSync(join(tmpdir(), 'edupulse-wal-aside'), { recursive: true, force: true });
  }
});

test('a WAL segment the server cannot read stops the restore naming it, instead of ending recovery early', async () => {
  await withClient(stack.pg, (c) => c.query('INSERT INTO probe DEFAULT VALUES; SELECT pg_switch_wal()'));
  await withClient(stack.pg, (c) => c.query('INSERT INTO probe DEFAULT VALUES; SELECT pg_switch_wal()'));
  await sleep(500);
  const wal = join(repo, 'wal');
  const stored = readdirSync(wal)
    .filter((f) => /^[0-9A-F]{24}\.zst$/.test(f))
    .sort()
    .slice(-2)[0]!;
  const victim = stored.slice(0, 24);
  const path = join(wal, stored);
  // Unreadable by the cluster's OS user: root's own file when run as root, mode 000 otherwise.
  if (stack.ctx.as) chownSync(path, 0, 0);
  else chmodSync(path, 0o000);
  const to = join(tempStateDir(), 'data');
  try {
    const r = await runJob('restore', ['--target-time', new Date().toISOString(), '--to', to, '--start'], stack.env);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`could not restore file "${victim}" from archive`));
    assert.not.ok(existsSync(to));
    // The server's log outlives the removed directory, and the message points there.
    const log = /see (\S+restore-[^\s]+\.log)/.exec(r.stderr)?.[1];
    assert.ok(log && log.startsWith(stack.ctx.paths.logDir) && existsSync(log), r.stderr);
    assert.match(readFileSync(log!, 'utf8'), new RegExp(victim));
  } finally {
    if (stack.ctx.as) chownSync(path, stack.ctx.as.uid, stack.ctx.as.gid);
    else chmodSync(path, 0o600);
    rmSync(dirname(to), { recursive: true, force: true });
  }
});

test('restore to "just now" on an idle server: archives the current WAL, stops exactly after the last commit, says so', async () => {
  // Nothing may commit after the target, autovacuum's ANALYZE included.
  await withoutAutovacuum(async () => {
    const to = join(tempStateDir(), 'data');
    try {
      const last = await insertProbe();
      await sleep(300);
      const target = new Date();
      // No pg_switch_wal here: the target is newer than the archive until the restore has it archived.
      const res = await restoreStarted(target, to);
      assert.ok(res.promoted);
      assert.match(res.recoveredTo, /^LSN /);
      assert.ok(
        Date.parse(res.quiet.lastCommit.time) <= target.getTime(),
        'the last commit is at or before the target',
      );
      assert.match(res.quiet.note, /nothing committed between/);
      const ids = await withClient(
        { ...stack.pg, port: res.port },
        async (c) => (await c.query('SELECT max(id) AS m, count(*) AS n FROM probe')).rows[0],
      );
      const live = await withClient(
        stack.pg,
        async (c) => (await c.query('SELECT count(*) AS n FROM probe')).rows[0].n,
      );
      assert.is(ids.m, last, 'the last row committed before the target is there');
      assert.is(ids.n, live, 'every row of the live table is there');
      // The last commit's time, as the report gives it (to the microsecond), names that commit: restored to it, it is there.
      await stopKept(to);
      const again = await restoreStarted(res.quiet.lastCommit.time, to);
      const m = await withClient(
        { ...stack.pg, port: again.port },
        async (c) => (await c.query('SELECT max(id) AS m FROM probe')).rows[0].m,
      );
      assert.is(m, last, 'restored to the commit time of the last row, the row is there');
      assert.match(again.target, new RegExp(res.quiet.lastCommit.time.replace(/[.]/g, '[.]')));
    } finally {
      await discardRestore(to);
    }
  });
});

test('restore to "just now" on a server that wrote nothing since its last segment switch: reachable, exact, says so', async () => {
  await withoutAutovacuum(async () => {
    const to = join(tempStateDir(), 'data');
    try {
      const last = await insertProbe();
      // Archived; from here on the server writes nothing, so asked to switch again, it does not (pg_switch_wal).
      await archiveUpToNow(stack.pg);
      const idle = await insertLsn();
      await sleep(1500);
      const res = await restoreStarted(new Date(), to);
      assert.match(res.quiet.note, /nothing committed between/);
      const ids = await withClient(
        { ...stack.pg, port: res.port },
        async (c) => (await c.query('SELECT max(id) AS m FROM probe')).rows[0].m,
      );
      assert.is(ids, last, 'the last row committed before the target is there');
      assert.is(await insertLsn(), idle, 'the live server wrote nothing meanwhile (the case under test)');
    } finally {
      await discardRestore(to);
    }
  });
});

test('restore to an LSN the archive does not reach yet (the current one): archives the current WAL first, loses nothing', async () => {
  const to = join(tempStateDir(), 'data');
  try {
    const { id, lsn } = await withClient(stack.pg, async (c) => {
      const id = (await c.query('INSERT INTO probe DEFAULT VALUES RETURNING id')).rows[0].id as number;
      return { id, lsn: (await c.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l as string };
    });
    const r = await runJob('restore', ['--target-lsn', lsn, '--to', to, '--start', '--json'], stack.env);
    assert.is(r.code, 0, r.stdout + r.stderr);
    const res = JSON.parse(r.stdout);
    const m = await withClient(
      { ...stack.pg, port: res.port },
      async (c) => (await c.query('SELECT max(id) AS m FROM probe')).rows[0].m,
    );
    assert.is(m, id, 'the row committed before the LSN is there');
  } finally {
    await discardRestore(to);
  }
});

test('restore to a restore point marked a moment ago (not archived yet): archives the current WAL first', async () => {
  const to = join(tempStateDir(), 'data');
  try {
    const marked = await runJob('backup:mark', ['just-marked', '--json'], stack.env);
    assert.is(marked.code, 0, marked.stderr);
    const r = await runJob('restore', ['--target-name', 'just-marked', '--to', to, '--start', '--json'], stack.env);
    assert.is(r.code, 0, r.stdout + r.stderr);
    const sides = await withClient({ ...stack.pg, port: JSON.parse(r.stdout).port }, async (c) =>
      (await c.query("SELECT side FROM edupulse_meta.drill_canaries WHERE drill_id = 'mark:just-marked'")).rows.map(
        (x) => x.side as string,
      ),
    );
    assert.equal(sides, ['before'], "the mark's canary before it is there, the one after it is not");
  } finally {
    await discardRestore(to);
  }
});

test('restore to a time the archive has not reached, though its newest segment was archived after it: archives first, loses nothing', async () => {
  const to = join(tempStateDir(), 'data');
  try {
    // The newest archived segment ends here; the rows below are in the live server's open segment.
    await archiveUpToNow(stack.pg);
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) ids.push(await insertProbe());
    await sleep(300);
    const target = new Date();
    await sleep(300);
    // As when the archiver lags: the segment that ended before the rows is written to the repository after the target.
    const wal = join(repo, 'wal');
    const newest = readdirSync(wal)
      .filter((f) => /^[0-9A-F]{24}\./.test(f))
      .sort()
      .pop()!;
    utimesSync(join(wal, newest), new Date(), new Date());
    const res = await restoreStarted(target, to);
    const got = await withClient({ ...stack.pg, port: res.port }, async (c) =>
      (await c.query('SELECT id FROM probe WHERE id = ANY($1) ORDER BY id', [ids])).rows.map((x) => x.id as number),
    );
    assert.equal(got, ids, 'every row committed before the target is there');
    if (res.quiet) assert.not.match(res.quiet.note, /could not be asked/);
  } finally {
    await discardRestore(to);
  }
});

test('cache:invalidate removes only prediction:* keys', async () => {
  const redis = new Redis({
    port: stack.ctx.settings.redis.port,
    password: stack.secrets.redis.password,
    lazyConnect: true,
    retryStrategy: () => null,
  });
  await redis.connect();
  try {
    const pipeline = redis.pipeline();
    for (let i = 0; i < 2500; i++) pipeline.set(`prediction:STU${i}`, '{}', 'EX', 3600);
    pipeline
      .set('session:abc', 'x')
      .set('predictions-index', 'y')
      .set('prediction', 'z')
      .set('other:prediction:1', 'w');
    await pipeline.exec();
    const r = await runJob('cache:invalidate', ['--json'], stack.env);
    assert.is(r.code, 0, r.stderr);
    assert.is(JSON.parse(r.stdout).removed, 2500);
    assert.equal((await redis.keys('*')).sort(), [
      'other:prediction:1',
      'prediction',
      'predictions-index',
      'session:abc',
    ]);
  } finally {
    redis.disconnect();
  }
});

test.run();
