// The compressed WAL archive against a real server: under a write burst every
// archived segment is stored compressed, decompresses cleanly, and holds the
// bytes the server wrote; a restore to a time in the middle of the burst is
// exact; and an archive holding some segments plain (written before
// compression) and the rest compressed is read alike by backup:verify and a
// restore.
import { spawnSync } from 'node:child_process';
import { chownSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withClient } from '../../ops-scripts/lib/db.ts';
import { archiveUpToNow } from '../../ops-scripts/lib/restore/archive-now.ts';
import { run } from '../../ops-scripts/lib/run.ts';
import { runJob } from '../cli.ts';
import { logged, startTestStack, tempStateDir, type TestStack } from '../harness.ts';

let stack: TestStack;
let wal = '';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SEGMENT = /^[0-9A-F]{24}$/;

test.before(
  logged(async () => {
    stack = await startTestStack();
    wal = stack.ctx.paths.walArchiveDir;
    await withClient(stack.owner(), (c) => c.query('CREATE TABLE burst (batch int, filler text)'));
    const b = await runJob('backup', ['--type', 'physical', '--json'], stack.env);
    assert.is(b.code, 0, b.stderr);
    const files = JSON.parse(b.stdout).record.files.map((f: { name: string }) => f.name);
    assert.ok(files.includes('pg_wal.tar.zst'), `the WAL in the base backup is compressed too: ${files}`);
  }),
);
test.after(logged(async () => stack?.stop()));

/** Batches `from`..`to` of ~8 MB of WAL each; returns a time between batch `split` and the next. */
async function burst(from: number, to: number, split: number): Promise<Date> {
  let between = new Date();
  for (let i = from; i <= to; i++) {
    await withClient(stack.pg, (c) =>
      c.query(`INSERT INTO burst SELECT $1, md5(g::text) || repeat('x', 100) FROM generate_series(1, 50000) g`, [i]),
    );
    if (i === split) {
      await sleep(100);
      between = new Date();
      await sleep(100);
    }
  }
  await archiveUpToNow(stack.pg);
  return between;
}

async function restoredBatches(target: Date): Promise<number[]> {
  const to = join(tempStateDir(), 'data');
  const r = await runJob(
    'restore',
    ['--target-time', target.toISOString(), '--to', to, '--start', '--json'],
    stack.env,
  );
  assert.is(r.code, 0, r.stdout + r.stderr);
  const port = JSON.parse(r.stdout).port as number;
  try {
    return await withClient({ ...stack.pg, port }, async (c) =>
      (await c.query('SELECT DISTINCT batch FROM burst ORDER BY batch')).rows.map((x) => x.batch as number),
    );
  } finally {
    await run(stack.ctx.pg.bin('pg_ctl'), ['stop', '-D', to, '-m', 'immediate', '-s'], {
      as: stack.ctx.as,
      nothrow: true,
    });
    rmSync(dirname(to), { recursive: true, force: true });
  }
}

test('under a write burst every segment is archived compressed, whole, with the bytes the server wrote; a restore into the burst is exact', async () => {
  const target = await burst(1, 8, 5);
  const stored = readdirSync(wal).filter((f) => /^[0-9A-F]{24}(\.zst)?$/.test(f));
  assert.ok(stored.length >= 6, `segments archived: ${stored.length}`);
  assert.ok(
    stored.every((f) => f.endsWith('.zst')),
    'all stored compressed',
  );
  let compared = 0;
  await withClient(stack.pg, async (c) => {
    const inPgWal = new Set((await c.query('SELECT name FROM pg_ls_waldir()')).rows.map((r) => r.name as string));
    for (const f of stored) {
      const path = join(wal, f);
      const t = spawnSync('zstd', ['-q', '-t', path]);
      assert.is(t.status, 0, `${f} decompresses`);
      assert.ok(statSync(path).size < 16 << 20, `${f} is smaller than a segment`);
      const name = f.slice(0, 24);
      if (!inPgWal.has(name)) continue;
      // A recycled segment file in pg_wal may already carry a later name; only compare a file still holding this one.
      const original = (await c.query('SELECT pg_read_binary_file($1) AS b', [`pg_wal/${name}`])).rows[0].b as Buffer;
      const unpacked = spawnSync('zstd', ['-q', '-d', '-c', path], { maxBuffer: 64 << 20 }).stdout;
      assert.ok(unpacked.equals(original), `${name}: the archive holds the server's bytes`);
      compared++;
    }
  });
  assert.ok(compared >= 4, `compared against pg_wal: ${compared}`);
  assert.equal(await restoredBatches(target), [1, 2, 3, 4, 5]);
});

test('an archive with some segments plain (from before compression) and the rest compressed verifies and restores', async () => {
  const target = await burst(9, 12, 10);
  // Every other segment back to the plain form an older archive holds.
  const compressed = readdirSync(wal)
    .filter((f) => /^[0-9A-F]{24}\.zst$/.test(f))
    .sort();
  const plain: string[] = [];
  for (const [i, f] of compressed.entries()) {
    if (i % 2) continue;
    const name = f.slice(0, 24);
    assert.is(spawnSync('zstd', ['-q', '-d', '-f', '-o', join(wal, name), join(wal, f)]).status, 0);
    if (stack.ctx.as) chownSync(join(wal, name), stack.ctx.as.uid, stack.ctx.as.gid);
    rmSync(join(wal, f));
    plain.push(name);
  }
  assert.ok(plain.length >= 3 && readdirSync(wal).some((f) => f.endsWith('.zst')), 'the archive is mixed');
  const v = await runJob('backup:verify', ['--all', '--json'], stack.env);
  assert.is(v.code, 0, v.stdout + v.stderr);
  const listed = JSON.parse((await runJob('backup:list', ['--json'], stack.env)).stdout);
  assert.ok(listed.backups[0].recoverable.to > listed.backups[0].recoverable.from, 'the window reaches the new WAL');
  assert.equal(await restoredBatches(target), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  // The plain copies stay as they are; the archiver keeps writing compressed ones.
  for (const name of plain) assert.ok(readdirSync(wal).includes(name), `${name} still plain`);
  assert.ok(SEGMENT.test(plain[0]!));
});

test('backup --incremental on PostgreSQL 15 takes a full backup and says why', async () => {
  const r = await runJob('backup', ['--incremental'], stack.env);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /full backup: PostgreSQL 15 has no incremental backups \(17\+\)/);
  const listed = JSON.parse((await runJob('backup:list', ['--json'], stack.env)).stdout);
  assert.not.ok(listed.backups.at(-1).physical.incremental);
  const bad = await runJob('backup', ['--type', 'logical', '--incremental'], stack.env);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--incremental is for physical backups/);
});

test.run();
