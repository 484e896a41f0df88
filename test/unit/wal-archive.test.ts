// The archive_command's script (infra/wal-archive.ts), run as PostgreSQL runs
// it: a segment is stored zstd-compressed and decompresses to the same bytes;
// archiving it again is success and leaves it as it was; different content under
// an archived name is refused (exit 1, logged, nothing overwritten), so the
// server keeps the segment and retries; history files stay plain; a plain copy
// from before compression counts; a failure leaves no temp file behind.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
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
import { ARCHIVE_WAL_SCRIPT } from '../../infra/wal-archive.ts';

const SEG = '00000001000000000000002A';

function withArchive(
  fn: (t: {
    dir: string;
    root: string;
    src: (name: string, content: Buffer) => string;
    archive: (path: string, name: string, recipients?: string) => { code: number; stderr: string };
  }) => void,
) {
  const root = mkdtempSync(join(tmpdir(), 'edupulse-archive-'));
  try {
    const script = join(root, 'archive-wal.sh');
    writeFileSync(script, ARCHIVE_WAL_SCRIPT, { mode: 0o755 });
    const dir = join(root, 'wal');
    spawnSync('mkdir', [dir]);
    fn({
      dir,
      root,
      src: (name, content) => {
        const p = join(root, `pg_wal-${name}`);
        writeFileSync(p, content);
        return p;
      },
      archive: (path, name, recipients) => {
        const r = spawnSync(script, [path, name, dir, '1', ...(recipients ? [recipients] : [])], { encoding: 'utf8' });
        return { code: r.status ?? -1, stderr: r.stderr };
      },
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const unzstd = (path: string) => spawnSync('zstd', ['-q', '-d', '-c', path], { maxBuffer: 64 << 20 }).stdout;
// A segment's shape: some records, then zeros to the end (what a switched segment looks like).
const segment = () => Buffer.concat([randomBytes(256 << 10), Buffer.alloc(4 << 20)]);

test('a segment is stored compressed, decompresses to the same bytes, and nothing else is left', () =>
  withArchive(({ dir, src, archive }) => {
    const content = segment();
    const r = archive(src(SEG, content), SEG);
    assert.is(r.code, 0, r.stderr);
    assert.equal(readdirSync(dir), [`${SEG}.zst`]);
    assert.ok(statSync(join(dir, `${SEG}.zst`)).size < content.length / 4, 'compressed');
    assert.ok(unzstd(join(dir, `${SEG}.zst`)).equals(content), 'decompresses to the segment');
  }));

test('archiving the same segment again is success and leaves the archived file as it was', () =>
  withArchive(({ dir, src, archive }) => {
    const path = src(SEG, segment());
    assert.is(archive(path, SEG).code, 0);
    const before = statSync(join(dir, `${SEG}.zst`));
    const again = archive(path, SEG);
    assert.is(again.code, 0, again.stderr);
    const after = statSync(join(dir, `${SEG}.zst`));
    assert.is(after.ino, before.ino);
    assert.is(after.mtimeMs, before.mtimeMs);
  }));

test('different content under an archived name is refused, logged, and not overwritten', () =>
  withArchive(({ dir, src, archive }) => {
    const first = segment();
    assert.is(archive(src(SEG, first), SEG).code, 0);
    const r = archive(src(`${SEG}-other`, segment()), SEG);
    assert.is(r.code, 1);
    assert.match(r.stderr, new RegExp(`${SEG}\\.zst is already archived with different content`));
    assert.ok(unzstd(join(dir, `${SEG}.zst`)).equals(first), 'the archived segment is untouched');
    assert.equal(readdirSync(dir), [`${SEG}.zst`]);
  }));

test('timeline history files are stored as they are; a plain segment from before compression counts as archived', () =>
  withArchive(({ dir, src, archive }) => {
    const history = Buffer.from('1\t0/3000000\tno recovery target specified\n');
    assert.is(archive(src('00000002.history', history), '00000002.history').code, 0);
    assert.ok(readFileSync(join(dir, '00000002.history')).equals(history));
    const old = segment();
    writeFileSync(join(dir, SEG), old);
    assert.is(archive(src(SEG, old), SEG).code, 0, 'the plain copy holds the same bytes');
    assert.not.ok(existsSync(join(dir, `${SEG}.zst`)), 'no second copy');
    assert.is(archive(src(`${SEG}-x`, segment()), SEG).code, 1, 'nor is a plain copy overwritten');
  }));

test('a directory that cannot be written fails the command and leaves no temp file', () =>
  withArchive(({ dir, src, archive }) => {
    if (process.getuid?.() === 0) {
      // root writes anywhere: make the failure the disk's instead, a directory that is a file.
      rmSync(dir, { recursive: true });
      writeFileSync(dir, '');
      assert.is.not(archive(src(SEG, segment()), SEG).code, 0);
      return;
    }
    chmodSync(dir, 0o500);
    assert.is.not(archive(src(SEG, segment()), SEG).code, 0);
    chmodSync(dir, 0o700);
    assert.equal(readdirSync(dir), []);
  }));

test('with age recipients a segment is stored encrypted: only the identity reads it; a retry is success, different bytes refused', () =>
  withArchive(({ dir, root, src, archive }) => {
    const identity = join(root, 'identity.txt');
    assert.is(spawnSync('age-keygen', ['-o', identity]).status, 0);
    const recipients = join(root, 'recipients');
    writeFileSync(recipients, spawnSync('age-keygen', ['-y', identity]).stdout);
    const content = segment();
    const path = src(SEG, content);
    const r = archive(path, SEG, recipients);
    assert.is(r.code, 0, r.stderr);
    assert.equal(readdirSync(dir).sort(), [`${SEG}.zst.age`, `${SEG}.zst.age.sha256`]);
    const stored = join(dir, `${SEG}.zst.age`);
    assert.match(readFileSync(stored).subarray(0, 21).toString(), /^age-encryption\.org\/v1/);
    const decrypted = spawnSync('age', ['-d', '-i', identity, stored], { maxBuffer: 64 << 20 }).stdout;
    assert.ok(
      spawnSync('zstd', ['-q', '-d', '-c'], { input: decrypted, maxBuffer: 64 << 20 }).stdout.equals(content),
      'decrypts and decompresses to the segment',
    );
    assert.is(archive(path, SEG, recipients).code, 0, 'the same segment again: success (by its SHA-256)');
    const other = archive(src(`${SEG}-other`, segment()), SEG, recipients);
    assert.is(other.code, 1);
    assert.match(other.stderr, /different content/);
  }));

test.run();
