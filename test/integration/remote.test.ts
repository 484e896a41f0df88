// The object store as a second repository backend, against a real S3-protocol
// server (s3rver) on a free port, through the real AWS SDK client.
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { walIndex } from '../../ops-scripts/lib/backup/layout.ts';
import S3rver from 's3rver';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { RemoteStore, remoteSettings } from '../../ops-scripts/lib/backup/remote.ts';
import { checkArchive, parseSegment } from '../../ops-scripts/lib/backup/wal.ts';
import { withClient } from '../../ops-scripts/lib/db.ts';
import { seed } from '../../ops-scripts/lib/seed/load.ts';
import { runJob } from '../cli.ts';
import { archiveUpToNow } from '../../ops-scripts/lib/restore/archive-now.ts';
import { run } from '../../ops-scripts/lib/run.ts';
import { freePort, logged, startTestStack, tempStateDir, type TestStack } from '../harness.ts';

// Set before any S3 client exists (the SDK's Node 22 notice is about versions not used here).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

let stack: TestStack;
let server: S3rver | undefined;
let s3Dir = '';
let port = 0;
let env: Record<string, string> = {};
const outputs: string[] = [];
const BUCKET = 'edupulse-backups';
// s3rver checks the access key id; the secret is ours, unique, and must never show up in any output.
const SECRET = `never-print-${process.pid}-${Date.now()}`;

async function startStore(): Promise<void> {
  server = new S3rver({ port, address: '127.0.0.1', silent: true, directory: s3Dir });
  await server.run();
}
async function stopStore(): Promise<void> {
  await server?.close();
  server = undefined;
}

const job = async (name: string, args: string[]) => {
  const r = await runJob(name, args, env);
  outputs.push(r.stdout, r.stderr);
  return r;
};
const store = () => new RemoteStore(remoteSettings(env)!);

test.before(
  logged(async () => {
    stack = await startTestStack();
    s3Dir = mkdtempSync(join(tmpdir(), 'edupulse-s3-'));
    port = await freePort();
    await startStore();
    env = {
      ...stack.env,
      EDUPULSE_REPO_MODE: 'copy',
      EDUPULSE_S3_ENDPOINT: `http://127.0.0.1:${port}`,
      EDUPULSE_S3_BUCKET: BUCKET,
      EDUPULSE_S3_PREFIX: 'edupulse/',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: SECRET,
      AWS_REGION: 'us-east-1',
    };
    const client = new S3Client({
      endpoint: env.EDUPULSE_S3_ENDPOINT,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    client.destroy();
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: 'us-east-1' });
    await seed(stack.owner(), { seed: 'remote', students: 200, yearEnd: '2026-06-12' }, { existing: 'refuse' });
  }),
);
test.after(async () => {
  await stopStore();
  await stack?.stop();
  rmSync(s3Dir, { recursive: true, force: true });
});

test('a backup with a remote copy uploads its files, then backup.json last, and pushes the WAL', async () => {
  const r = await job('backup', ['--type', 'physical', '--json']);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const result = JSON.parse(r.stdout);
  assert.ok(result.offload.ok);
  const s = store();
  try {
    const objects = await s.list(`base/${result.record.id}/`);
    assert.ok(objects.has(`base/${result.record.id}/backup.json`));
    for (const f of result.record.files) assert.is(objects.get(`base/${result.record.id}/${f.name}`), f.bytes, f.name);
    assert.ok((await s.list('wal/')).size > 0);
  } finally {
    s.close();
  }
});

test('with the store stopped the job exits 1, nothing is half-listed remotely, and the next run completes the offload', async () => {
  await stopStore();
  await new Promise((res) => setTimeout(res, 1100));
  const failed = await job('backup', ['--type', 'physical', '--json']);
  assert.is(failed.code, 1, failed.stdout + failed.stderr);
  const result = JSON.parse(failed.stdout);
  assert.not.ok(result.offload.ok);
  assert.match(result.offload.error, /object store/);
  const id = result.record.id;
  const listed = JSON.parse((await job('backup:list', ['--json'])).stdout);
  assert.ok(
    listed.backups.some((b: { id: string; offloaded: boolean }) => b.id === id && b.offloaded === false),
    'complete locally, marked not offloaded',
  );
  assert.match((await job('backup:list', [])).stdout, /NOT OFFLOADED/);
  await startStore();
  const s = store();
  try {
    assert.not.ok((await s.list(`base/${id}/`)).has(`base/${id}/backup.json`), 'not listed remotely');
  } finally {
    s.close();
  }
  await new Promise((res) => setTimeout(res, 1100));
  const next = await job('backup', ['--type', 'logical', '--json']);
  assert.is(next.code, 0, next.stdout + next.stderr);
  assert.ok(
    JSON.parse(next.stdout).offload.offloaded.includes(`physical/${id}`),
    'the next run uploaded the one left behind',
  );
});

test('WAL pushed in order with no gap after a burst of pg_switch_wal', async () => {
  for (let i = 0; i < 5; i++)
    await withClient(stack.pg, (c) => c.query('CREATE TEMP TABLE t AS SELECT 1; SELECT pg_switch_wal()'));
  await new Promise((res) => setTimeout(res, 1500));
  const r = await job('wal:push', ['--json']);
  assert.is(r.code, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).pushed.length >= 4);
  const s = store();
  try {
    const stored = [...(await s.list('wal/')).keys()].map((k) => k.slice(4)).sort();
    const names = [...walIndex(stored).keys()].sort();
    const local = readdirSync(join(stack.ctx.paths.repoDir, 'wal')).filter((f) => /^[0-9A-F]{24}(\.zst)?$/.test(f));
    assert.ok(local.length && local.every((f) => f.endsWith('.zst')), 'the archive holds segments compressed');
    for (const f of local) assert.ok(stored.includes(f), `${f} is in the store as it is archived`);
    // The archive times travel along (the store's own are upload times): a time target is found by them.
    const times = JSON.parse((await s.getText('wal-archived-at.json'))!) as Record<string, string>;
    for (const f of local) {
      const at = statSync(join(stack.ctx.paths.repoDir, 'wal', f)).mtime.toISOString();
      assert.is(times[f.slice(0, 24)], at, `${f}'s archive time`);
    }
    const first = parseSegment(
      names.find((n) => /^[0-9A-F]{24}$/.test(n))!,
      16 * 1024 * 1024,
    )!;
    assert.equal(checkArchive(names, new Map(), first, 16 * 1024 * 1024).missing, []);
  } finally {
    s.close();
  }
});

/** The backups the store lists (their backup.json keys). */
const remoteIds = async () => {
  const s = store();
  try {
    return [...(await s.list('base/')).keys()].filter((k) => k.endsWith('/backup.json')).sort();
  } finally {
    s.close();
  }
};

test('while a restore on this host reads (its marker in <repo>/.readers), a backup prunes neither the repository nor the store', async () => {
  await new Promise((res) => setTimeout(res, 1100));
  assert.is((await job('backup', ['--type', 'physical', '--keep-physical', '99'])).code, 0);
  const before = await remoteIds();
  assert.ok(before.length >= 2, 'there is something to prune');
  // A live reader, as restore() registers itself: a process and its marker.
  const reader = spawn('sleep', ['600'], { stdio: 'ignore' });
  const markers = join(stack.ctx.paths.repoDir, '.readers');
  mkdirSync(markers, { recursive: true });
  const marker = join(markers, `${reader.pid}.json`);
  writeFileSync(marker, JSON.stringify({ pid: reader.pid, startedAt: new Date().toISOString(), job: 'restore' }));
  try {
    await new Promise((res) => setTimeout(res, 1100));
    const r = await job('backup', ['--type', 'physical', '--keep-physical', '1', '--json']);
    assert.is(r.code, 0, r.stderr);
    assert.match(JSON.parse(r.stdout).pruned.deferred, new RegExp(`restore \\(pid ${reader.pid},`));
    const after = await remoteIds();
    assert.ok(
      before.every((k) => after.includes(k)),
      'the store kept every backup while the restore read',
    );
  } finally {
    reader.kill();
    rmSync(marker, { force: true });
  }
});

test("while a restore on another host reads the store (its lease in readers/), a backup keeps the store's backups and says who reads", async () => {
  await new Promise((res) => setTimeout(res, 1100));
  assert.is((await job('backup', ['--type', 'physical', '--keep-physical', '99'])).code, 0);
  const before = await remoteIds();
  assert.ok(before.length >= 2, 'there is something to prune');
  const s = store();
  // As a restore on a disaster-recovery host leaves it: nothing on this host knows of that process.
  const lease = 'readers/dr-host-4242.json';
  await s.putText(
    lease,
    JSON.stringify({ host: 'dr-host', pid: 4242, job: 'restore', startedAt: new Date().toISOString() }),
  );
  try {
    await new Promise((res) => setTimeout(res, 1100));
    const r = await job('backup', ['--type', 'physical', '--keep-physical', '1', '--json']);
    assert.is(r.code, 0, r.stderr);
    assert.match(JSON.parse(r.stdout).offload.retentionDeferred, /restore on dr-host \(pid 4242,/);
    const after = await remoteIds();
    assert.ok(
      before.every((k) => after.includes(k)),
      'the store kept every backup while the other host read',
    );
  } finally {
    await s.remove([lease]);
    s.close();
  }
});

test('a restore that leases the store while retention on another host is at work there waits for it, then reads the store again', async () => {
  const s = store();
  // As retention on another host leaves it, before it looks for leases: a restore leasing now was not seen.
  const pruner = 'pruners/primary-host-77.json';
  await s.putText(
    pruner,
    JSON.stringify({ host: 'primary-host', pid: 77, job: 'retention', startedAt: new Date().toISOString() }),
  );
  const to = join(tempStateDir(), 'data');
  let restoring: ReturnType<typeof job> | undefined;
  try {
    const before = await remoteIds();
    restoring = job('restore', ['--from-remote', '--target', 'immediate', '--to', to, '--json']);
    let done = false;
    void restoring.finally(() => (done = true));
    // It checked its input against the store's catalog and leased the store: then it waits.
    while (!done && !(await s.list('readers/')).size) await new Promise((res) => setTimeout(res, 100));
    assert.not.ok(done, `the restore waited: ${outputs.at(-1)}`);
    // Meanwhile the store changes under it (as the other host's job leaves it): a newer backup arrives.
    await new Promise((res) => setTimeout(res, 1100));
    assert.is((await job('backup', ['--type', 'physical', '--keep-physical', '99'])).code, 0);
    const added = (await remoteIds()).filter((k) => !before.includes(k));
    assert.is(added.length, 1);
    assert.not.ok(done, 'still waiting while retention is at work');
    assert.not.ok(existsSync(to), 'nothing restored yet');
    await s.remove([pruner]);
    const r = await restoring;
    assert.is(r.code, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout);
    // --json: the report alone on stdout, the warning on stderr.
    assert.match(r.stderr, /^warning: retention is at work on the object store \(retention on primary-host \(pid 77,/m);
    // Its report says what it waited for, and for about as long as the other host's work took.
    assert.match(report.storeWait.for, /^retention on primary-host \(pid 77,/);
    assert.ok(report.storeWait.seconds >= 1, JSON.stringify(report.storeWait));
    // What it restored is what the store held once retention was done, not what it read before it leased.
    assert.is(`base/${report.backup.id}/backup.json`, added[0]);
    assert.equal([...(await s.list('readers/')).keys()], [], 'and it released its lease');
  } finally {
    await s.remove([pruner]);
    // A check that failed early leaves the restore running: it ends before its directory goes.
    await restoring?.catch(() => {});
    s.close();
    rmSync(dirname(to), { recursive: true, force: true });
  }
});

test('retention removes the same backups remotely as locally', async () => {
  await new Promise((res) => setTimeout(res, 1100));
  const r = await job('backup', ['--type', 'physical', '--keep-physical', '1', '--json']);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const local = JSON.parse((await job('backup:list', ['--json'])).stdout)
    .backups.filter((b: { kind: string }) => b.kind === 'physical')
    .map((b: { id: string }) => b.id);
  assert.equal(local.length, 1);
  const s = store();
  try {
    const remote = [...(await s.list('base/')).keys()]
      .filter((k) => k.endsWith('/backup.json'))
      .map((k) => k.split('/')[1]);
    assert.equal(remote, local);
    assert.equal([...(await s.list('pruners/')).keys()], [], 'retention, done, no longer marks itself at work');
  } finally {
    s.close();
  }
});

test("backup:list and backup:verify work on the store's copy; a missing object fails verify naming it", async () => {
  const listed = await job('backup:list', ['--remote', '--json']);
  assert.is(listed.code, 0, listed.stderr);
  const remote = JSON.parse(listed.stdout).backups as Array<{ id: string; kind: string }>;
  assert.ok(remote.length >= 2);
  const ok = await job('backup:verify', ['--all', '--remote']);
  assert.is(ok.code, 0, ok.stdout + ok.stderr);
  const victim = remote.find((b) => b.kind === 'logical')!;
  const s = store();
  try {
    await s.remove([`logical/${victim.id}/dump.pgdump`]);
    const bad = await job('backup:verify', [victim.id, '--remote']);
    assert.is(bad.code, 1);
    assert.match(bad.stdout, /dump\.pgdump is missing from the store/);
  } finally {
    s.close();
  }
});

test('with the local repository gone, a drill from the store alone verifies', async () => {
  const marked = await job('backup:mark', ['before-the-loss']);
  assert.is(marked.code, 0, marked.stderr);
  const s = store();
  try {
    assert.match(
      (await s.getText('restore-points.json'))!,
      /before-the-loss/,
      'named restore points reach the store too',
    );
  } finally {
    s.close();
  }
  rmSync(join(stack.ctx.paths.repoDir, 'base'), { recursive: true, force: true });
  for (const f of readdirSync(join(stack.ctx.paths.repoDir, 'wal'))) rmSync(join(stack.ctx.paths.repoDir, 'wal', f));
  const r = await job('drill', ['--json']);
  const report = JSON.parse(r.stdout);
  assert.is(r.code, 0, JSON.stringify(report.checks, null, 1));
  assert.ok(
    report.checks.some(
      (c: { name: string; status: string }) => c.name.startsWith('data exactness') && c.status === 'passed',
    ),
  );
});

test('a restore from the store alone replays across WAL segments named with digits only and with letters, fetched ahead into the spool', async () => {
  const b = await job('backup', ['--type', 'physical', '--json']);
  assert.is(b.code, 0, b.stdout + b.stderr);
  await withClient(stack.pg, (c) => c.query('CREATE TABLE walk (n int PRIMARY KEY)'));
  // Each row in its own segment, until the segments replayed include both kinds of name.
  const names: string[] = [];
  let n = 0;
  while (n < 3 || !names.some((s) => /^\d+$/.test(s)) || !names.some((s) => /[A-F]/.test(s))) {
    names.push(
      await withClient(stack.pg, async (c) => {
        await c.query('INSERT INTO walk VALUES ($1)', [++n]);
        return (await c.query('SELECT pg_walfile_name(pg_switch_wal()) AS s')).rows[0].s as string;
      }),
    );
  }
  await new Promise((res) => setTimeout(res, 50));
  const target = new Date();
  await new Promise((res) => setTimeout(res, 50));
  await withClient(stack.pg, (c) => c.query('INSERT INTO walk VALUES ($1)', [n + 1]));
  await archiveUpToNow(stack.pg);
  assert.is((await job('wal:push', [])).code, 0);
  rmSync(join(stack.ctx.paths.repoDir, 'base'), { recursive: true, force: true });
  for (const f of readdirSync(join(stack.ctx.paths.repoDir, 'wal'))) rmSync(join(stack.ctx.paths.repoDir, 'wal', f));
  const to = join(tempStateDir(), 'data');
  // While it reads, the store holds the restore's lease (retention on any host waits); once it is done, none.
  const leases = new Set<string>();
  let restoring = true;
  const watch = (async () => {
    const s = store();
    try {
      while (restoring) {
        for (const k of (await s.list('readers/')).keys()) leases.add(k);
        await new Promise((res) => setTimeout(res, 100));
      }
    } finally {
      s.close();
    }
  })();
  const r = await job('restore', [
    '--from-remote',
    '--target-time',
    target.toISOString(),
    '--to',
    to,
    '--start',
    '--json',
  ]).finally(() => (restoring = false));
  await watch;
  assert.is(r.code, 0, r.stdout + r.stderr);
  // From here a restored server runs: every check is inside the try, so a failing one still stops it.
  try {
    assert.ok(
      [...leases].some((k) => /^readers\/.+-\d+\.json$/.test(k)),
      `the restore leased the store: ${[...leases]}`,
    );
    const left = store();
    try {
      assert.equal([...(await left.list('readers/')).keys()], [], 'and released it');
    } finally {
      left.close();
    }
    // The segments came from the prefetcher's spool, not one wal:fetch process each.
    const prefetch = JSON.parse(r.stdout).walPrefetch as { fetched: number; used: number; failed: number };
    assert.ok(prefetch.used >= 3 && prefetch.failed === 0, JSON.stringify(prefetch));
    const port = JSON.parse(r.stdout).port as number;
    const rows = await withClient({ ...stack.pg, port }, async (c) =>
      (await c.query('SELECT n FROM walk ORDER BY n')).rows.map((x) => x.n as number),
    );
    assert.equal(
      rows,
      Array.from({ length: n }, (_, i) => i + 1),
      'every row committed before the target, none after',
    );
    const log = readFileSync(join(to, 'restore.log'), 'utf8');
    for (const name of names)
      assert.match(log, new RegExp(`restored log file "${name}" from archive`), `${name} fetched from the store`);
  } finally {
    await run(stack.ctx.pg.bin('pg_ctl'), ['stop', '-D', to, '-m', 'immediate', '-s'], {
      as: stack.ctx.as,
      nothrow: true,
    });
    rmSync(dirname(to), { recursive: true, force: true });
  }
  // Not started, the same restore takes the WAL it replays from the store into its pg_wal: started later with no
  // store to read (every fetch fails), it reaches the same state.
  const later = join(tempStateDir(), 'data');
  try {
    const r2 = await job('restore', ['--from-remote', '--target-time', target.toISOString(), '--to', later, '--json']);
    assert.is(r2.code, 0, r2.stdout + r2.stderr);
    const res = JSON.parse(r2.stdout);
    assert.ok(res.walCopied.files >= names.length, JSON.stringify(res.walCopied));
    writeFileSync(join(later, 'postgresql.auto.conf'), "restore_command = 'false'\n", { flag: 'a' });
    const started = await run(
      stack.ctx.pg.bin('pg_ctl'),
      ['start', '-D', later, '-w', '-t', '120', '-s', '-l', join(later, 'later.log')],
      {
        as: stack.ctx.as,
        nothrow: true,
      },
    );
    assert.is(started.code, 0, readFileSync(join(later, 'later.log'), 'utf8'));
    let rows: number[] = [];
    for (let i = 0; i < 600; i++) {
      const [recovering, got] = await withClient({ ...stack.pg, port: res.port }, async (c) => [
        (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r as boolean,
        (await c.query('SELECT n FROM walk ORDER BY n')).rows.map((x) => x.n as number),
      ]);
      rows = got as number[];
      if (!recovering) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(
      rows,
      Array.from({ length: n }, (_, i) => i + 1),
      'the same rows, without the store',
    );
  } finally {
    await run(stack.ctx.pg.bin('pg_ctl'), ['stop', '-D', later, '-m', 'immediate', '-s'], {
      as: stack.ctx.as,
      nothrow: true,
    });
    rmSync(dirname(later), { recursive: true, force: true });
  }
});

test('remote mode keeps nothing locally once the store has it', async () => {
  await new Promise((res) => setTimeout(res, 1100));
  const remoteEnv = { ...env, EDUPULSE_REPO_MODE: 'remote' };
  const r = await runJob('backup', ['--type', 'physical', '--json'], remoteEnv);
  outputs.push(r.stdout, r.stderr);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const id = JSON.parse(r.stdout).record.id;
  assert.equal(
    readdirSync(join(stack.ctx.paths.repoDir, 'base')).filter((d) => !d.startsWith('.')),
    [],
    'the local copy is gone',
  );
  assert.equal(
    readdirSync(join(stack.ctx.paths.repoDir, 'wal')).filter((f) => /^[0-9A-F]{24}(\.zst)?$/.test(f)),
    [],
    'pushed segments are gone locally',
  );
  const listed = await runJob('backup:list', ['--remote', '--json'], remoteEnv);
  assert.ok(JSON.parse(listed.stdout).backups.some((b: { id: string }) => b.id === id));
});

test('credentials never appear in logs or reports', () => {
  const logs = readdirSync(stack.ctx.paths.logDir).map((f) => readFileSync(join(stack.ctx.paths.logDir, f), 'utf8'));
  const history = readFileSync(join(stack.ctx.paths.repoDir, 'drill-history.md'), 'utf8');
  for (const text of [...outputs, ...logs, history]) assert.not.ok(text.includes(SECRET), 'the secret key leaked');
  assert.ok(outputs.length >= 10);
});

test.run();
