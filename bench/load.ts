// npm run bench:load: the seeder's COPY path against batched multi-row
// INSERTs of the same generated rows, side by side in one run, on a
// throwaway cluster. End to end: the clock stops when every constraint is in
// force and valid.
import { declarations } from '../roles/declarations.ts';
import { withClient, withTransaction, quoteIdent, type PgConfig } from '../ops-scripts/lib/db.ts';
import { migratorConfig } from '../migrations/engine/migrate.ts';
import { readSecrets } from '../ops-scripts/lib/secrets.ts';
import { GENERATORS, tableChunks, type SeedSpec } from '../ops-scripts/lib/seed/generate.ts';
import { seed, SEED_TABLES } from '../ops-scripts/lib/seed/load.ts';
import { startTestStack } from '../test/harness.ts';

const STUDENTS = Number(process.env.BENCH_STUDENTS ?? 10_000);
const BATCH = 1000;
const spec: SeedSpec = { seed: 'bench', students: STUDENTS, offset: 0, yearEnd: '2026-06-12' };

const unescape = (v: string) =>
  v === '\\N' ? null : v.replace(/\\([\\tnr])/g, (_, c: string) => ({ '\\': '\\', t: '\t', n: '\n', r: '\r' })[c]!);

async function insertPath(config: PgConfig): Promise<{ rows: number; seconds: number }> {
  const t0 = performance.now();
  let rows = 0;
  await withClient(config, (c) =>
    withTransaction(c, async () => {
      await c.query(`TRUNCATE ${SEED_TABLES.join(', ')} RESTART IDENTITY CASCADE`);
      for (const gen of GENERATORS) {
        const cols = gen.columns.map(quoteIdent).join(', ');
        let batch: Array<string | null> = [];
        let n = 0;
        const flush = async () => {
          if (!n) return;
          const w = gen.columns.length;
          const values = Array.from(
            { length: n },
            (_, i) => `(${gen.columns.map((__, j) => `$${i * w + j + 1}`).join(', ')})`,
          ).join(', ');
          await c.query(`INSERT INTO ${gen.table} (${cols}) VALUES ${values}`, batch);
          rows += n;
          batch = [];
          n = 0;
        };
        for (const chunk of tableChunks(gen, spec)) {
          for (const line of chunk.text.split('\n')) {
            if (!line) continue;
            batch.push(...line.split('\t').map(unescape));
            if (++n === BATCH) await flush();
          }
        }
        await flush();
      }
    }),
  );
  return { rows, seconds: (performance.now() - t0) / 1000 };
}

const stack = await startTestStack();
try {
  const config = migratorConfig(stack.pg, readSecrets(stack.ctx.paths.secretsFile)!.roles[declarations.migrator]!);
  console.log(
    `bench:load: ${STUDENTS.toLocaleString()} students, PostgreSQL ${stack.ctx.pg.version}, one run, same rows both ways`,
  );
  const copy = await seed(
    config,
    { seed: spec.seed, students: STUDENTS, yearEnd: spec.yearEnd },
    { existing: 'truncate' },
  );
  const ins = await insertPath(config);
  const copyRate = copy.totalRows / copy.seconds,
    insRate = ins.rows / ins.seconds;
  console.log(
    `COPY (seeder, FKs re-validated)      ${copy.totalRows.toLocaleString()} rows  ${copy.seconds.toFixed(2)} s  ${Math.round(copyRate).toLocaleString()} rows/s`,
  );
  console.log(
    `INSERT (${BATCH}-row batches, FKs live)  ${ins.rows.toLocaleString()} rows  ${ins.seconds.toFixed(2)} s  ${Math.round(insRate).toLocaleString()} rows/s`,
  );
  console.log(
    `ratio COPY/INSERT: ${(copyRate / insRate).toFixed(1)}x  (targets: COPY >= 250,000 rows/s, >= 5x INSERT)`,
  );
} finally {
  await stack.stop();
}
