// npm run bench:writes: what the maintained structures cost the writers. The
// nightly prediction batch (one new prediction per student: a night when every
// category holds, and the worst night, every student to medium) and a school day
// of attendance (one row per student), each inserted the way a batch job
// does (one INSERT ... SELECT, and one COPY), through the tables' triggers
// (latest_predictions' statement-level upsert, the fill-null-defaults BEFORE
// ROW triggers) and with the same tables' user triggers disabled, side by
// side, BENCH_ROUNDS (3) alternating rounds, medians. Each insert runs in a
// transaction rolled back afterwards, and the tables are vacuumed after it, so
// every round starts from the same tables. Target (#19): <= 1.3x the trigger-free time.
import { from as copyFrom } from 'pg-copy-streams';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { declarations } from '../roles/declarations.ts';
import { migratorConfig } from '../migrations/engine/migrate.ts';
import { withClient } from '../ops-scripts/lib/db.ts';
import { readSecrets } from '../ops-scripts/lib/secrets.ts';
import { DERIVED_TABLES, seed } from '../ops-scripts/lib/seed/load.ts';
import { startTestStack } from '../test/harness.ts';

const STUDENTS = Number(process.env.BENCH_STUDENTS ?? 50_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const stack = await startTestStack();
try {
  const secrets = readSecrets(stack.ctx.paths.secretsFile)!;
  const owner = migratorConfig(stack.pg, secrets.roles[declarations.migrator]!);
  const t0 = performance.now();
  // The year up to yesterday, the batches tonight and today: the attendance day lands in the counts' window.
  const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
  const [yesterday, today] = [day(-1), day(0)];
  const tonight = `${today} 02:00+00`;
  await seed(owner, { seed: 'bench', students: STUDENTS, yearEnd: yesterday }, { existing: 'refuse' });
  console.log(`bench:writes: seeded ${STUDENTS} students in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await withClient(stack.pg, (c) => c.query('VACUUM ANALYZE'));
  const ids = await withClient(owner, async (c) =>
    (await c.query<{ id: string }>('SELECT student_id AS id FROM students ORDER BY 1')).rows.map((r) => r.id),
  );
  const latest = await withClient(owner, async (c) =>
    (
      await c.query<{ id: string; score: number; category: string }>(
        'SELECT student_id AS id, risk_score AS score, risk_category AS category FROM edupulse_derived.latest_predictions ORDER BY 1',
      )
    ).rows.map((r) => `${r.id}\t${r.score}\t${r.category}\t0.9\tbench\t${tonight}\n`),
  );
  const batches = {
    // A night when the model's categories hold (each student's new prediction keeps its latest category).
    'predictions, categories kept: INSERT ... SELECT': {
      table: 'predictions',
      run: (c: pg.Client) =>
        c.query(`INSERT INTO predictions (student_id, risk_score, risk_category, confidence, model_version, prediction_date)
                 SELECT student_id, risk_score, risk_category, 0.9, 'bench', '${tonight}'
                 FROM edupulse_derived.latest_predictions`),
    },
    'predictions, categories kept: COPY': {
      table: 'predictions',
      run: (c: pg.Client) =>
        copyRows(
          c,
          'COPY predictions (student_id, risk_score, risk_category, confidence, model_version, prediction_date) FROM STDIN',
          latest,
        ),
    },
    // The worst night: every student to medium (about 70% of them change category).
    'predictions, all to medium: INSERT ... SELECT': {
      table: 'predictions',
      run: (c: pg.Client) =>
        c.query(`INSERT INTO predictions (student_id, risk_score, risk_category, confidence, model_version, prediction_date)
                 SELECT student_id, (abs(hashtext(student_id)) % 1000) / 1000.0, 'medium', 0.9, 'bench', '${tonight}'
                 FROM students`),
    },
    'predictions, all to medium: COPY': {
      table: 'predictions',
      run: (c: pg.Client) =>
        copyRows(
          c,
          'COPY predictions (student_id, risk_score, risk_category, confidence, model_version, prediction_date) FROM STDIN',
          ids.map((id, i) => `${id}\t${(i % 1000) / 1000}\tmedium\t0.9\tbench\t${tonight}\n`),
        ),
    },
    'attendance: INSERT ... SELECT': {
      table: 'attendance_records',
      run: (c: pg.Client) =>
        c.query(`INSERT INTO attendance_records (student_id, date, status, minutes_late)
                 SELECT student_id, DATE '${today}',
                        (ARRAY['present','present','present','present','present','present','absent','tardy'])[1 + abs(hashtext(student_id)) % 8], 0
                 FROM students`),
    },
    'attendance: COPY': {
      table: 'attendance_records',
      run: (c: pg.Client) =>
        copyRows(
          c,
          'COPY attendance_records (student_id, date, status, minutes_late) FROM STDIN',
          ids.map((id, i) => `${id}\t${today}\t${i % 8 === 6 ? 'absent' : i % 8 === 7 ? 'tardy' : 'present'}\t0\n`),
        ),
    },
  } as const;
  const times: Record<string, { on: number[]; off: number[] }> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, b] of Object.entries(batches)) {
      times[name] ??= { on: [], off: [] };
      // Alternate which goes first, so neither always meets the warmer cache.
      for (const triggers of round % 2 ? [false, true] : [true, false]) {
        // The last batch's rolled-back rows are dead tuples and index entries until vacuumed: without this each
        // round met more of them than the one before, and autovacuum started inside timed batches. Then a
        // checkpoint, so one landing inside a timed batch does not decide the ratio.
        await withClient(stack.pg, async (c) => {
          await c.query(`VACUUM ${b.table}, ${DERIVED_TABLES.join(', ')}`);
          await c.query('CHECKPOINT');
        });
        const seconds = await withClient(owner, async (c) => {
          await c.query('BEGIN');
          if (!triggers) await c.query(`ALTER TABLE ${b.table} DISABLE TRIGGER USER`);
          const s = performance.now();
          await b.run(c);
          const took = (performance.now() - s) / 1000;
          await c.query('ROLLBACK');
          return took;
        });
        times[name]![triggers ? 'on' : 'off'].push(seconds);
      }
    }
  }
  console.log(`\nbench:writes: ${STUDENTS} rows per batch, median of ${ROUNDS} alternating rounds (target <= 1.3x)`);
  console.log('| batch | with triggers | without | ratio | ratio each round |');
  console.log('|---|---|---|---|---|');
  for (const [name, t] of Object.entries(times)) {
    const on = median(t.on),
      off = median(t.off);
    const rounds = t.on.map((s, i) => `${(s / t.off[i]!).toFixed(2)}x`).join(' ');
    console.log(`| ${name} | ${on.toFixed(3)} s | ${off.toFixed(3)} s | ${(on / off).toFixed(2)}x | ${rounds} |`);
  }
} finally {
  await stack.stop();
}

async function copyRows(c: pg.Client, sql: string, lines: string[]): Promise<void> {
  await pipeline(Readable.from(lines), c.query(copyFrom(sql)));
}
