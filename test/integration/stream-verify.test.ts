// Verifying a base backup against its manifest as a stream, without an
// extracted copy: a real backup passes (and pg_verifybackup on an extracted
// copy agrees); a flipped byte in a data file, a tampered manifest and a
// missing member are each named.
import {
  closeSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  hashBaseTarWhileWritten,
  STREAM_VERIFY_TOOL,
  streamVerify,
} from '../../ops-scripts/lib/backup/stream-verify.ts';
import { run } from '../../ops-scripts/lib/run.ts';
import { runJob } from '../cli.ts';
import { logged, startTestStack, type TestStack } from '../harness.ts';

let stack: TestStack;
let scratch: string;
let backupDir: string;
let record: { id: string; files: Array<{ name: string; sha256: string }>; verification: { tool: string } };

test.before(
  logged(async () => {
    stack = await startTestStack();
    scratch = mkdtempSync(join(tmpdir(), 'edupulse-verify-'));
    const r = await runJob('backup', ['--type', 'physical', '--json'], stack.env);
    assert.is(r.code, 0, r.stderr);
    record = JSON.parse(r.stdout).record;
    backupDir = join(stack.ctx.paths.repoDir, 'base', record.id);
  }),
);

test.after(async () => {
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** A copy of the backup to damage, with base.tar uncompressed so a byte can be flipped in place. */
async function copy(name: string): Promise<string> {
  const dir = join(scratch, name);
  cpSync(backupDir, dir, { recursive: true });
  await run('zstd', ['-dq', '--rm', join(dir, 'base.tar.zst')]);
  return dir;
}

/** Both ways the job verifies: base.tar read after the backup, and hashed while it was written; they must agree. */
async function verify(dir: string) {
  const manifest = readFileSync(join(dir, 'backup_manifest'), 'utf8');
  const opts = () => ({
    pgWaldump: stack.ctx.pg.bin('pg_waldump'),
    scratch: join(scratch, `wal-${Math.random().toString(36).slice(2)}`),
  });
  const read = await streamVerify(dir, manifest, opts());
  const hashed = await hashBaseTarWhileWritten(dir, () => false);
  const overlapped = await streamVerify(dir, manifest, { ...opts(), hashed });
  assert.equal(overlapped.problems, read.problems, 'hashed while written or read after: the same findings');
  assert.equal(overlapped.stored, read.stored);
  return read;
}

test('the backup job verified the backup as a stream, and the stored checksums came from that read', async () => {
  assert.is(record.verification.tool, STREAM_VERIFY_TOOL);
  const again = await verify(backupDir);
  assert.equal(again.problems, []);
  const manifest = JSON.parse(readFileSync(join(backupDir, 'backup_manifest'), 'utf8'));
  assert.is(again.checkedFiles, manifest.Files.length, 'every file the manifest lists was checked');
  for (const f of record.files.filter((x) => x.name.includes('.tar')))
    assert.is(again.stored[f.name], f.sha256, f.name);
  // pg_verifybackup on an extracted copy agrees (backup:verify --deep).
  const deep = await runJob('backup:verify', [record.id, '--deep'], stack.env);
  assert.is(deep.code, 0, deep.stdout + deep.stderr);
});

test('a flipped byte in a data file is named, with both checksums', async () => {
  const dir = await copy('flipped');
  const tar = readFileSync(join(dir, 'base.tar'));
  // PG_VERSION's header, then its content one block later: "15\n" becomes "95\n".
  const header = tar.indexOf(Buffer.from('PG_VERSION\0'));
  assert.ok(header >= 0 && header % 512 === 0, 'PG_VERSION is a member at the top level');
  tar[header + 512] = '9'.charCodeAt(0);
  writeFileSync(join(dir, 'base.tar'), tar);
  const r = await verify(dir);
  assert.is(r.problems.length, 1, r.problems.join('\n'));
  assert.match(r.problems[0]!, /^PG_VERSION: SHA-256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}$/);
});

test('a tampered manifest fails its own checksum; a file it lists that the backup lacks is named', async () => {
  const dir = await copy('manifest');
  const text = readFileSync(join(dir, 'backup_manifest'), 'utf8');
  const bumped = text.replace('{ "Path": "PG_VERSION", "Size": 3,', '{ "Path": "PG_VERSION", "Size": 4,');
  assert.is.not(bumped, text, 'the manifest lists PG_VERSION with 3 bytes');
  const missing = bumped.replace('"Files": [\n', '"Files": [\n{ "Path": "base/1/999999", "Size": 0 },\n');
  writeFileSync(join(dir, 'backup_manifest'), missing);
  const r = await verify(dir);
  assert.ok(
    r.problems.some((p) => /^the manifest's checksum is [0-9a-f]{64}, it says/.test(p)),
    r.problems.join('\n'),
  );
  assert.ok(r.problems.includes('PG_VERSION: 3 bytes, the manifest says 4'), r.problems.join('\n'));
  assert.ok(r.problems.includes('base/1/999999: in the manifest but not in the backup'), r.problems.join('\n'));
});

test('base.tar hashed while a writer still appends to it ends with what the finished file holds', async () => {
  const dir = join(scratch, 'growing');
  const src = readFileSync(join(backupDir, 'base.tar.zst'));
  mkdirSync(dir);
  let writing = true;
  const hashing = hashBaseTarWhileWritten(dir, () => writing);
  // The file appears late and grows in pieces, as pg_basebackup writes it.
  await new Promise((r) => setTimeout(r, 100));
  const fd = openSync(join(dir, 'base.tar.zst'), 'w');
  for (let off = 0; off < src.length; off += 1 << 18) {
    writeSync(fd, src, off, Math.min(1 << 18, src.length - off));
    await new Promise((r) => setTimeout(r, 5));
  }
  closeSync(fd);
  writing = false;
  const grown = (await hashing)!;
  const whole = (await hashBaseTarWhileWritten(backupDir, () => false))!;
  assert.ok(grown.ended);
  assert.is(grown.stored, whole.stored);
  assert.equal([...grown.members], [...whole.members]);
  assert.is(grown.stored, record.files.find((f) => f.name === 'base.tar.zst')!.sha256);
});

test.run();
