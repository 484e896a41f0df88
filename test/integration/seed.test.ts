// The seeder against a real cluster: deterministic data, counts as reported,
// constraints valid after the fast path, and the explicit choice about data
// already there.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { declarations } from '../../roles/declarations.ts';
import { withClient } from '../../ops-scripts/lib/db.ts';
import { migratorConfig } from '../../migrations/engine/migrate.ts';
import { readSecrets } from '../../ops-scripts/lib/secrets.ts';
import { GENERATORS, schoolDays, tableChunks } from '../../ops-scripts/lib/seed/generate.ts';
import { seed, SEED_TABLES } from '../../ops-scripts/lib/seed/load.ts';
import { run } from '../../ops-scripts/lib/run.ts';
import { PROJECT_ROOT } from '../../ops-scripts/lib/state.ts';
import { runJob } from '../cli.ts';
import { logged, startTestStack, type TestStack } from '../harness.ts';

let stack: TestStack;
const YEAR_END = '2026-06-12';
const owner = () => migratorConfig(stack.pg, readSecrets(stack.ctx.paths.secretsFile)!.roles[declarations.migrator]!);

test.before(
  logged(async () => {
    stack = await startTestStack();
  }),
);
test.after(async () => {
  await stack?.stop();
});

/** A digest of every table's rows, without the load-time timestamps. */
async function fingerprint(): Promise<Record<string, string>> {
  return withClient(stack.pg, async (c) => {
    const out: Record<string, string> = {};
    for (const t of SEED_TABLES) {
      const { rows } = await c.query(`SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) AS h
        FROM (SELECT to_jsonb(x) - 'created_at' - 'updated_at' AS r FROM ${t} x) s`);
      out[t] = rows[0].h;
    }
    return out;
  });
}

async function counts(): Promise<Record<string, number>> {
  return withClient(stack.pg, async (c) => {
    const out: Record<string, number> = {};
    for (const t of SEED_TABLES) out[t] = Number((await c.query(`SELECT count(*) AS n FROM ${t}`)).rows[0].n);
    return out;
  });
}

test('the school year: 180 school days, no weekends, no summer break', () => {
  const days = schoolDays(YEAR_END);
  assert.is(days.length, 180);
  assert.is(days[days.length - 1], YEAR_END);
  assert.ok(days.every((d) => ![0, 6].includes(new Date(`${d}T00:00:00Z`).getUTCDay())));
  assert.ok(days.every((d) => d.slice(5, 7) !== '07'));
});

test('the generator is deterministic for a seed and differs across seeds', () => {
  const all = (seedValue: string) =>
    GENERATORS.map((g) =>
      [...tableChunks(g, { seed: seedValue, students: 30, offset: 0, yearEnd: YEAR_END })].map((c) => c.text).join(''),
    );
  assert.equal(all('a'), all('a'));
  assert.is.not(all('a')[1], all('b')[1]);
});

test('seed loads with COPY, reports the counts it made, and leaves every foreign key valid', async () => {
  const result = await seed(owner(), { seed: 's1', students: 300, yearEnd: YEAR_END }, { existing: 'refuse' });
  assert.equal(await counts(), result.rows);
  assert.is(result.rows.students, 300);
  assert.is(result.rows.attendance_records, 300 * 180);
  assert.is(result.rows.predictions, 300 * 10);
  assert.ok(result.rows.grades! > 0 && result.rows.discipline_incidents! > 0);
  await withClient(stack.pg, async (c) => {
    const { rows } = await c.query(
      "SELECT conrelid::regclass::text AS t, convalidated FROM pg_constraint WHERE contype = 'f' AND confrelid = 'students'::regclass AND conparentid = 0 ORDER BY 1",
    );
    assert.equal(
      rows,
      [...SEED_TABLES.slice(1), 'edupulse_derived.latest_high', 'edupulse_derived.latest_predictions']
        .sort()
        .map((t) => ({ t, convalidated: true })),
    );
    // A partition's key (inherited from attendance_records) is back and valid with its table's.
    const parts = await c.query(
      "SELECT count(*) FILTER (WHERE convalidated)::int AS valid, count(*)::int AS all FROM pg_constraint WHERE contype = 'f' AND confrelid = 'students'::regclass AND conrelid::regclass::text LIKE 'edupulse_partitions.%'",
    );
    assert.ok(parts.rows[0].all >= 2, 'the first partition and the default one each carry the key');
    assert.is(parts.rows[0].valid, parts.rows[0].all);
    // The NULL-filling triggers the load turned off are on again, one per seeded table (and its partitions' clones).
    const fills = await c.query(
      "SELECT tgrelid::regclass::text AS t, tgenabled AS e FROM pg_trigger WHERE tgname LIKE '%\\_fill\\_null\\_defaults' AND tgparentid = 0 ORDER BY 1",
    );
    assert.equal(
      fills.rows,
      [...SEED_TABLES].sort().map((t) => ({ t, e: 'O' })),
    );
    const clones = await c.query('SELECT DISTINCT tgenabled AS e FROM pg_trigger WHERE tgparentid <> 0');
    assert.equal(clones.rows, [{ e: 'O' }]);
    // Realism: a skewed minority is chronically absent (10% or more of days), most are not.
    const chronic =
      await c.query(`SELECT avg((r >= 0.1)::int) AS share FROM (SELECT avg((status IN ('absent', 'excused'))::int) AS r
      FROM attendance_records GROUP BY student_id) s`);
    const share = Number(chronic.rows[0].share);
    assert.ok(share > 0.05 && share < 0.25, `chronically absent share ${share}`);
  });
});

test('the same seed produces identical data', async () => {
  const first = await fingerprint();
  await seed(owner(), { seed: 's1', students: 300, yearEnd: YEAR_END }, { existing: 'truncate' });
  assert.equal(await fingerprint(), first);
  await seed(owner(), { seed: 's2', students: 300, yearEnd: YEAR_END }, { existing: 'truncate' });
  assert.is.not((await fingerprint()).attendance_records, first.attendance_records);
});

test('a non-empty database is refused (exit 3, nothing changed); --append adds, --truncate replaces', async () => {
  const before = await fingerprint();
  const refused = await runJob('seed', ['--students', '10'], stack.env);
  assert.is(refused.code, 3, refused.stderr);
  assert.match(refused.stderr, /--truncate/);
  assert.equal(await fingerprint(), before);
  const appended = await runJob('seed', ['--students', '10', '--append', '--json', '--year-end', YEAR_END], stack.env);
  assert.is(appended.code, 0, appended.stderr);
  assert.is(JSON.parse(appended.stdout).offset, 300);
  assert.is((await counts()).students, 310);
  const replaced = await runJob('seed', ['--students', '20', '--truncate', '--year-end', YEAR_END], stack.env);
  assert.is(replaced.code, 0, replaced.stderr);
  assert.is((await counts()).students, 20);
  for (const bad of [
    ['--students', '0'],
    ['--students', 'many'],
    ['--year-end', 'soon'],
    ['--append', '--truncate'],
  ]) {
    assert.is((await runJob('seed', bad, stack.env)).code, 2, bad.join(' '));
  }
  assert.is((await counts()).students, 20);
});

const studentKeys = () =>
  withClient(stack.pg, async (c) => {
    const { rows } = await c.query(
      "SELECT count(*) FILTER (WHERE convalidated)::int AS valid, count(*)::int AS all FROM pg_constraint WHERE contype = 'f' AND confrelid = 'students'::regclass",
    );
    return rows[0] as { valid: number; all: number };
  });

test('a seed killed mid-load leaves the database as it was', async () => {
  const before = await fingerprint();
  const keys = await studentKeys();
  assert.is(keys.valid, keys.all);
  const child = run(
    process.execPath,
    ['--import', 'tsx', `${PROJECT_ROOT}/ops-scripts/seed.ts`, '--students', '20000', '--truncate'],
    { env: stack.env, nothrow: true, timeoutMs: 1500 },
  );
  const r = await child;
  assert.is.not(r.code, 0, 'the seed was meant to be killed before it finished');
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(await fingerprint(), before);
  assert.equal(await studentKeys(), keys, 'every foreign key to students is back and valid');
});

test.run();
