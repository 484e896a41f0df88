// writeFileAtomic: a file is written whole or not at all, and a failed write
// leaves nothing behind in its directory (no temp file).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileAtomic } from '../../ops-scripts/lib/files.ts';

let dir: string;
test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'edupulse-files-'));
});
test.after.each(() => rmSync(dir, { recursive: true, force: true }));

test('writes the content, owner-only, with no temp file left', () => {
  writeFileAtomic(join(dir, 'a.json'), '{"a":1}');
  assert.is(readFileSync(join(dir, 'a.json'), 'utf8'), '{"a":1}');
  assert.is(statSync(join(dir, 'a.json')).mode & 0o777, 0o600);
  assert.equal(readdirSync(dir), ['a.json']);
});

test('a write that fails (the path is a directory) throws and leaves the directory as it was', () => {
  mkdirSync(join(dir, 'taken'));
  assert.throws(() => writeFileAtomic(join(dir, 'taken'), 'x'), /EISDIR|directory/);
  assert.equal(readdirSync(dir), ['taken']);
  assert.equal(readdirSync(join(dir, 'taken')), []);
});

test.run();
