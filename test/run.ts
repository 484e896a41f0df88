// The test command: typecheck, then every test file in its own process (so
// one file's servers, globals or Pulumi mocks never leak into another), and a
// last line "N passed, N failed, N skipped" summed from uvu's own totals.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { PROJECT_ROOT } from '../ops-scripts/lib/state.ts';

const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => {
      const p = join(dir, e.name);
      if (e.isDirectory()) return e.name === 'fixtures' ? [] : testFiles(p);
      return e.name.endsWith('.test.ts') ? [p] : [];
    })
    .sort();
}

const filter = process.argv[2];
// Whatever the tests and the jobs they run create in the temp directory, they remove (a passfile left behind once held a real password).
const TMP_PREFIX = 'edupulse-';
const tmpBefore = new Set(readdirSync(tmpdir()).filter((n) => n.startsWith(TMP_PREFIX)));
let passed = 0,
  failed = 0,
  skipped = 0;

const tsc = spawnSync(
  process.execPath,
  [join(PROJECT_ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', PROJECT_ROOT],
  { stdio: 'inherit' },
);
if (tsc.status === 0) console.log('typecheck: ok');
else {
  failed++;
  console.log('typecheck: FAILED (counted as one failure)');
}
// One formatter (Prettier, .prettierrc.json): a file it would change is a failure, fixed by `npm run format`.
const format = spawnSync(
  process.execPath,
  [join(PROJECT_ROOT, 'node_modules/prettier/bin/prettier.cjs'), '--check', '--log-level', 'warn', '.'],
  {
    cwd: PROJECT_ROOT,
    stdio: 'inherit',
  },
);
if (format.status === 0) console.log('format: ok');
else {
  failed++;
  console.log('format: FAILED (counted as one failure): run `npm run format`');
}
// The jobs run from the compiled JavaScript, as the bin runs them for users: built fresh from this tree.
const build = spawnSync(process.execPath, [join(PROJECT_ROOT, 'tools/build.js'), '--no-check'], { stdio: 'inherit' });
if (build.status === 0) console.log('build: ok');
else {
  failed++;
  console.log('build: FAILED (counted as one failure)');
}

// Unit tests (pure code, the Pulumi graph under mocks) first: seconds, and they fail fast; then the integration
// tests against servers the harness starts.
for (const file of ['unit', 'integration'].flatMap((d) => testFiles(join(PROJECT_ROOT, 'test', d)))) {
  const name = relative(PROJECT_ROOT, file);
  if (filter && !name.includes(filter)) continue;
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    maxBuffer: 64 * 1024 * 1024,
  });
  const out = strip(`${r.stdout}${r.stderr}`);
  process.stdout.write(`\n== ${name} (${((Date.now() - started) / 1000).toFixed(1)}s)\n${out}`);
  const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const ok = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const skip = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
  if (Number.isNaN(total) || Number.isNaN(ok)) {
    // The file died before uvu could report (an import error, a crash in a hook).
    failed++;
    process.stdout.write(`!! ${name} ended without a uvu summary (exit ${r.status ?? r.signal})\n`);
    continue;
  }
  passed += ok;
  skipped += skip;
  failed += total - ok;
  if (r.status !== 0 && total === ok) failed++; // a failing hook or a late crash
}

const leftInTmp = readdirSync(tmpdir()).filter((n) => n.startsWith(TMP_PREFIX) && !tmpBefore.has(n));
if (!filter) {
  if (leftInTmp.length) {
    failed++;
    console.log(
      `\n!! the suite left ${leftInTmp.length} entries in ${tmpdir()} (counted as one failure): ${leftInTmp.join(', ')}`,
    );
  } else console.log(`\ntemp directory: nothing left behind in ${tmpdir()}`);
}

console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
