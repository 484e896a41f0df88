// The report page, in a real browser: Debian's headless Chromium loads the
// file written by `edupulse-db report` for a test stack with a backup, a drill
// and a health result; its DOM holds the expected text and charts, and
// screenshots at a desktop and a phone width are not blank.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../ops-scripts/lib/run.ts';
import { runJob } from '../cli.ts';
import { logged, startTestStack, type TestStack } from '../harness.ts';

let stack: TestStack;
let scratch: string;
let file: string;
let drillStartedAt: string;

test.before(
  logged(async () => {
    stack = await startTestStack();
    scratch = mkdtempSync(join(tmpdir(), 'edupulse-report-'));
    assert.is((await runJob('backup', ['--type', 'physical'], stack.env)).code, 0);
    const drill = await runJob('drill', ['--json'], stack.env);
    assert.is(drill.code, 0, drill.stderr);
    drillStartedAt = JSON.parse(drill.stdout).startedAt;
    await runJob('health', ['--textfile'], stack.env);
    file = join(scratch, 'report.html');
    const r = await runJob('report', ['--out', file, '--json'], stack.env);
    assert.is(r.code, 0, r.stderr);
    assert.is(JSON.parse(r.stdout).file, file);
  }),
);

test.after(async () => {
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Headless Chromium with a throwaway profile; as root it needs --no-sandbox. */
function chromium(args: string[]) {
  return run(
    'chromium',
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      `--user-data-dir=${join(scratch, 'profile')}`,
      '--hide-scrollbars',
      ...args,
    ],
    { nothrow: true, dieWithParent: true, timeoutMs: 60_000, env: { HOME: scratch } },
  );
}

/** Width, height and how many distinct byte values the decompressed image data holds (a blank page has very few). */
function png(path: string): { width: number; height: number; distinct: number } {
  const buf = readFileSync(path);
  assert.equal([...buf.subarray(1, 4)], [...Buffer.from('PNG')], 'a PNG file');
  const idat: Buffer[] = [];
  for (let off = 8; off < buf.length;) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('ascii', off + 4, off + 8);
    if (type === 'IDAT') idat.push(buf.subarray(off + 8, off + 8 + len));
    off += 12 + len;
  }
  const pixels = inflateSync(Buffer.concat(idat));
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20), distinct: new Set(pixels).size };
}

test('the file is one self-contained page: no script, no network reference, small', () => {
  const html = readFileSync(file, 'utf8');
  assert.not.match(html, /<script/i);
  assert.not.match(html, /(src|href)="https?:/i, 'nothing loaded from the network');
  assert.ok(statSync(file).size < 300_000, `${statSync(file).size} bytes`);
  assert.is(statSync(file).mode & 0o777, 0o600);
});

test('Chromium loads it: the DOM holds the coverage, the last proven restore, the charts and the restore command', async () => {
  const r = await chromium(['--dump-dom', `file://${file}`]);
  assert.is(r.code, 0, r.stderr.slice(-2000));
  const dom = r.stdout;
  assert.match(dom, /<h1>EduPulse data layer: recovery report<\/h1>/);
  assert.ok(dom.includes(drillStartedAt), 'the drill just run is the last proven restore');
  assert.is((dom.match(/<svg/g) ?? []).length, 4, 'timeline, backup sizes, drill RTO, drill RPO');
  assert.ok((dom.match(/class="window"/g) ?? []).length >= 1, 'a recoverable window');
  assert.is((dom.match(/class="backup"/g) ?? []).length, 1, 'one base backup on the timeline');
  assert.match(dom, /edupulse-db restore --target-time \S+ --to /);
  assert.match(dom, /id="health"[^]*?(ok|warn|critical) \(/, 'the recorded health result');
});

for (const [name, width, height] of [
  ['desktop', 1280, 900],
  ['phone', 390, 844],
] as const) {
  test(`a screenshot at ${name} width (${width}x${height}) is not blank`, async () => {
    const shot = join(scratch, `${name}.png`);
    const r = await chromium([`--screenshot=${shot}`, `--window-size=${width},${height}`, `file://${file}`]);
    assert.is(r.code, 0, r.stderr.slice(-2000));
    const p = png(shot);
    assert.equal([p.width, p.height], [width, height]);
    assert.ok(p.distinct > 40, `${p.distinct} distinct values: text and charts, not an empty page`);
  });
}

test('--out a directory, or a file in a missing directory: exit 2, named, and nothing written anywhere', async () => {
  const before = readdirSync(scratch).sort();
  const dir = await runJob('report', ['--out', scratch], stack.env);
  assert.is(dir.code, 2, dir.stderr);
  assert.match(dir.stderr, `--out ${scratch} is a directory`);
  const missing = join(scratch, 'no-such-dir', 'report.html');
  const gone = await runJob('report', ['--out', missing], stack.env);
  assert.is(gone.code, 2, gone.stderr);
  assert.match(gone.stderr, `directory ${join(scratch, 'no-such-dir')} does not exist`);
  assert.equal(readdirSync(scratch).sort(), before, 'no temp file or page left beside them');
});

test.run();
