// The command layer keeps identifiers as the strings they were typed: a WAL
// segment name made only of digits, a numeric backup id or restore point name.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { command, parseCommandArgs, type CommandIO, type CommandSpec } from '../../ops-scripts/lib/cli.ts';
import { ToolkitError } from '../../ops-scripts/lib/errors.ts';
import { runJob } from '../cli.ts';

async function parsed(argv: string[], spec: { string?: string[] } = {}): Promise<CommandIO['args']> {
  let seen: CommandIO['args'] | undefined;
  await command(
    { name: 'probe', usage: 'probe', positionals: { max: 9 }, ...spec },
    async ({ args }) => {
      seen = args;
    },
    argv,
  );
  process.exitCode = 0;
  return seen!;
}

const ALL_DIGITS = '000000010000000100000009';
const WITH_LETTERS = '00000001000000010000000A';

test('positional WAL names made only of digits stay exact strings', async () => {
  const args = await parsed([ALL_DIGITS, WITH_LETTERS, '0012', '1e3']);
  assert.equal(args._, [ALL_DIGITS, WITH_LETTERS, '0012', '1e3']);
  for (const a of args._) assert.type(a, 'string');
});

test('flag values that look like numbers stay strings', async () => {
  const args = await parsed(['--backup', '20261124221000', '--target-name', '007'], {
    string: ['backup', 'target-name'],
  });
  assert.is(args.backup, '20261124221000');
  assert.is(args['target-name'], '007');
});

test('wal:fetch accepts an all-digit segment name, and fails any error with 126 so recovery stops rather than promotes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edupulse-walname-'));
  try {
    const env = { EDUPULSE_REPO_MODE: 'local' };
    for (const name of [ALL_DIGITS, WITH_LETTERS]) {
      const r = await runJob('wal:fetch', [name, join(dir, 'RECOVERYXLOG')], env);
      assert.is(r.code, 126, r.stderr);
      assert.match(r.stderr, /needs EDUPULSE_REPO_MODE=copy or remote/, `${name} passed the name check`);
    }
    // 126, not 1 or 2: PostgreSQL aborts recovery on it instead of promoting at this segment.
    const bad = await runJob('wal:fetch', ['not-a-wal-name', join(dir, 'x')], env);
    assert.is(bad.code, 126);
    assert.match(bad.stderr, /a WAL file name/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const spec: CommandSpec = {
  name: 'probe',
  usage: 'probe',
  boolean: ['prometheus', 'redis'],
  string: ['students', 'backup'],
  defaults: { redis: true },
  positionals: { max: 1, name: 'id' },
  conflicts: [['json', 'prometheus']],
};

function badInputOf(argv: string[]): string {
  try {
    parseCommandArgs(spec, argv);
  } catch (err) {
    assert.instance(err, ToolkitError);
    assert.is((err as ToolkitError).exitCode, 2, 'bad input is exit 2');
    return (err as ToolkitError).message;
  }
  throw new Error(`${argv.join(' ')} was accepted`);
}

test('unknown, repeated, contradictory flags, extra arguments and dash values are bad input, each in one line', () => {
  assert.is(badInputOf(['--nope']), 'unknown option --nope');
  assert.is(badInputOf(['--backup', 'a', '--backup', 'b']), '--backup given more than once');
  assert.is(badInputOf(['--json', '--prometheus']), '--json and --prometheus contradict each other');
  assert.match(
    badInputOf(['one', 'prediction:1', 'prediction:2']),
    /takes at most 1 id; extra: "prediction:1" "prediction:2"/,
  );
  assert.is(badInputOf(['--students', '-5']), '--students needs a value');
  assert.is(badInputOf(['--redis', '--no-redis']), '--redis and --no-redis contradict each other');
  assert.match(badInputOf(['--students']), /--students needs a value/);
});

test('defaults, --no-flag, and a dash value given with =', () => {
  assert.is(parseCommandArgs(spec, []).redis, true);
  assert.is(parseCommandArgs(spec, ['--no-redis']).redis, false);
  assert.is(parseCommandArgs(spec, ['--students=-5']).students, '-5');
  assert.is(parseCommandArgs(spec, ['--json']).prometheus, false);
});

test('a job given arguments it does not take exits 2 naming them', async () => {
  const r = await runJob('cache:invalidate', ['prediction:*'], { EDUPULSE_REPO_MODE: 'local' });
  assert.is(r.code, 2, r.stderr);
  assert.is(r.stderr.trim().split('\n')[0], 'cache:invalidate: takes no arguments, but was given "prediction:*"');
  const unknown = await runJob('backup', ['--nope']);
  assert.is(unknown.code, 2);
  assert.is(unknown.stderr.split('\n')[0], 'backup: unknown option --nope', 'the job is named once');
});

test('bad values that used to reach the server or the file system are exit 2 with one line', async () => {
  for (const [job, args, message] of [
    ['apply', ['--lock-timeout', 'banana'], /--lock-timeout "banana" is not a duration/],
    // A bare number is milliseconds to PostgreSQL, 0 turns the timeout off: neither is what was meant.
    ['apply', ['--lock-timeout', '5'], /--lock-timeout "5" is not a duration with its unit/],
    ['vacuum', ['--lock-timeout', '0s'], /--lock-timeout "0s" would turn the timeout off/],
    ['vacuum', ['--statement-timeout', '600h'], /past PostgreSQL's limit/],
    // Checked before the partitions are kept (with no server here, that would be exit 1).
    ['vacuum', ['--max-duration', '10x'], /--max-duration 10x is not a duration/],
    ['migrate:lint', ['/nonexistent'], /\/nonexistent is not a directory of migrations/],
    ['vacuum', ['--full', 'students; drop table students'], /is not a table name/],
  ] as const) {
    const r = await runJob(job, [...args], { EDUPULSE_REPO_MODE: 'local' });
    assert.is(r.code, 2, `${job} ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

test('an impossible date is bad input, not rolled over to the next month', async () => {
  const r = await runJob('seed', ['--year-end', '2000-02-30']);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /--year-end 2000-02-30 is not a date/);
});

test('a school year ending after today is bad input: its records would be dated in the future', async () => {
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  for (const day of [tomorrow, '2999-06-30']) {
    const r = await runJob('seed', ['--year-end', day]);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`--year-end ${day} is after today`));
  }
});

test('every job has its npm script, as the README promises (`npm run <job> -- [flags]`)', () => {
  const scripts = JSON.parse(readFileSync('package.json', 'utf8')).scripts as Record<string, string>;
  const jobs = readdirSync('ops-scripts')
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3).replace(/-/g, ':'));
  assert.equal(
    jobs.filter((j) => scripts[j] !== `node bin/edupulse-db.js ${j}`),
    [],
    'jobs without an npm script running the bin',
  );
});

test.run();
