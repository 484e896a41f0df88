// Encryption at rest with age, end to end on a real stack that holds only the
// recipient (public key): base backups, dumps and archived WAL are written
// encrypted; backup:verify checks them without the identity; a tampered
// ciphertext is caught; a restore or logical drill without the identity is
// refused (exit 2) before anything is touched; with it, a point-in-time restore
// is exact and backup:verify --deep passes.
import { spawnSync } from 'node:child_process';
import {
  chownSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withClient } from '../../ops-scripts/lib/db.ts';
import { archiveUpToNow } from '../../ops-scripts/lib/restore/archive-now.ts';
import { run } from '../../ops-scripts/lib/run.ts';
import { runJob } from '../cli.ts';
import { logged, startTestStack, tempStateDir, type TestStack } from '../harness.ts';

let stack: TestStack;
let keys = '';
let identity = '';
let backupId = '';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const withIdentity = () => ({ ...stack.env, EDUPULSE_BACKUP_AGE_IDENTITY: identity });
const isAge = (path: string) => {
  const fd = openSync(path, 'r');
  const head = Buffer.alloc(21);
  readSync(fd, head, 0, 21, 0);
  closeSync(fd);
  return head.toString() === 'age-encryption.org/v1';
};

test.before(
  logged(async () => {
    // The identity lives away from the stack (as it would off the database host), owned by the server's OS user.
    keys = mkdtempSync(join(tmpdir(), 'edupulse-keys-'));
    identity = join(keys, 'identity.txt');
    assert.is(spawnSync('age-keygen', ['-o', identity]).status, 0);
    const recipient = spawnSync('age-keygen', ['-y', identity]).stdout.toString().trim();
    stack = await startTestStack({ env: { EDUPULSE_BACKUP_AGE_RECIPIENTS: recipient } });
    if (stack.ctx.as) {
      chownSync(keys, stack.ctx.as.uid, stack.ctx.as.gid);
      chownSync(identity, stack.ctx.as.uid, stack.ctx.as.gid);
    }
    await withClient(stack.owner(), (c) => c.query('CREATE TABLE secret (n int, note text)'));
    await withClient(stack.pg, (c) =>
      c.query(`INSERT INTO secret SELECT g, 'confidential' FROM generate_series(1, 100) g`),
    );
    const b = await runJob('backup', ['--type', 'physical', '--json'], stack.env);
    assert.is(b.code, 0, b.stdout + b.stderr);
    backupId = JSON.parse(b.stdout).record.id;
  }),
);
test.after(
  logged(async () => {
    await stack?.stop();
    rmSync(keys, { recursive: true, force: true });
  }),
);

test('backups and archived WAL are written encrypted to the recipient; nothing readable is left', async () => {
  const dir = join(stack.ctx.paths.repoDir, 'base', backupId);
  const record = JSON.parse(readFileSync(join(dir, 'backup.json'), 'utf8'));
  assert.is(record.encryption.tool, 'age');
  const tars = readdirSync(dir).filter((f) => f.includes('.tar'));
  assert.equal(tars.sort(), ['base.tar.zst.age', 'pg_wal.tar.zst.age']);
  for (const f of tars) assert.ok(isAge(join(dir, f)), `${f} is an age file`);
  await withClient(stack.pg, (c) => c.query(`INSERT INTO secret VALUES (101, 'more')`));
  await archiveUpToNow(stack.pg);
  const wal = readdirSync(stack.ctx.paths.walArchiveDir).filter((f) => /^[0-9A-F]{24}/.test(f));
  const segments = wal.filter((f) => !f.endsWith('.sha256') && !f.endsWith('.backup'));
  assert.ok(segments.length > 0 && segments.every((f) => f.endsWith('.zst.age')), segments.join(' '));
  for (const f of segments) assert.ok(isAge(join(stack.ctx.paths.walArchiveDir, f)));
  assert.not.ok(existsSync(join(stack.ctx.paths.root, 'pg', 'identity.txt')));
  const v = await runJob('backup:verify', [backupId], stack.env);
  assert.is(v.code, 0, `verified without the identity: ${v.stdout}${v.stderr}`);
});

test('a tampered ciphertext is detected by backup:verify without the identity', async () => {
  const file = join(stack.ctx.paths.repoDir, 'base', backupId, 'base.tar.zst.age');
  const fd = openSync(file, 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, 500);
  writeSync(fd, Buffer.from([byte[0]! ^ 0xff]), 0, 1, 500);
  try {
    const v = await runJob('backup:verify', [backupId], stack.env);
    assert.is(v.code, 1);
    assert.match(v.stdout + v.stderr, /base\.tar\.zst\.age does not match its SHA-256/);
  } finally {
    writeSync(fd, byte, 0, 1, 500);
    closeSync(fd);
  }
});

test('without the identity a restore and a logical drill are refused with exit 2, nothing touched', async () => {
  const to = join(tempStateDir(), 'data');
  const r = await runJob('restore', ['--target', 'immediate', '--to', to], stack.env);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /encrypted and no identity file is set/);
  assert.match(r.stderr, /EDUPULSE_BACKUP_AGE_IDENTITY/);
  assert.not.ok(existsSync(to));
  rmSync(dirname(to), { recursive: true, force: true });
  const dump = await runJob('backup', ['--type', 'logical', '--json'], stack.env);
  assert.is(dump.code, 0, dump.stderr);
  assert.match(JSON.parse(dump.stdout).record.files[0].name, /\.age$/);
  const before = await withClient(
    stack.pg,
    async (c) => (await c.query('SELECT count(*)::int AS n FROM pg_database')).rows[0].n,
  );
  const d = await runJob('drill', ['--logical'], stack.env);
  assert.is(d.code, 2, d.stderr);
  const after = await withClient(
    stack.pg,
    async (c) => (await c.query('SELECT count(*)::int AS n FROM pg_database')).rows[0].n,
  );
  assert.is(after, before, 'no scratch database made');
});

test('with the identity: a point-in-time restore is exact, the logical drill passes, backup:verify --deep passes', async () => {
  await withClient(stack.pg, (c) => c.query('INSERT INTO secret VALUES (200, $1)', ['before']));
  await sleep(200);
  const target = new Date();
  await sleep(200);
  await withClient(stack.pg, (c) => c.query('INSERT INTO secret VALUES (300, $1)', ['after']));
  const to = join(tempStateDir(), 'data');
  const r = await runJob(
    'restore',
    ['--target-time', target.toISOString(), '--to', to, '--start', '--json'],
    withIdentity(),
  );
  assert.is(r.code, 0, r.stdout + r.stderr);
  try {
    const rows = await withClient({ ...stack.pg, port: JSON.parse(r.stdout).port }, async (c) =>
      (await c.query('SELECT n FROM secret WHERE n > 100 ORDER BY n')).rows.map((x) => x.n as number),
    );
    assert.equal(rows, [101, 200]);
  } finally {
    await run(stack.ctx.pg.bin('pg_ctl'), ['stop', '-D', to, '-m', 'immediate', '-s'], {
      as: stack.ctx.as,
      nothrow: true,
    });
    rmSync(dirname(to), { recursive: true, force: true });
  }
  const d = await runJob('drill', ['--logical', '--json'], withIdentity());
  assert.is(d.code, 0, d.stdout + d.stderr);
  const v = await runJob('backup:verify', [backupId, '--deep'], withIdentity());
  assert.is(v.code, 0, v.stdout + v.stderr);
});

test.run();
