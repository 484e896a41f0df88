// npm run bench:queries: the view queries on seed data of 50,000 students
// (9M attendance rows, 10 predictions per student), in one run on a
// throwaway cluster. Medians of repeated runs, three ways: the server's own
// execution time (EXPLAIN ANALYZE, TIMING OFF), end to end through psql (C
// client, every row fetched), and end to end through node-postgres (which
// adds its JavaScript row parsing). EXPLAIN (ANALYZE, BUFFERS) plans are
// saved beside the figures.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { declarations } from '../roles/declarations.ts';
import { withClient, type PgClient } from '../ops-scripts/lib/db.ts';
import { run } from '../ops-scripts/lib/run.ts';
import { migratorConfig } from '../migrations/engine/migrate.ts';
import { readSecrets } from '../ops-scripts/lib/secrets.ts';
import { DERIVED_TABLES, seed, SEED_TABLES } from '../ops-scripts/lib/seed/load.ts';
import { PROJECT_ROOT } from '../ops-scripts/lib/state.ts';
import { startTestStack } from '../test/harness.ts';

const STUDENTS = Number(process.env.BENCH_STUDENTS ?? 50_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 9);
const HEADER = '| query | rows | server (EXPLAIN ANALYZE) | psql end to end | node-postgres end to end | target |';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const DOCUMENTED = `SELECT s.student_id, s.first_name, s.last_name, p.risk_score, p.risk_category
  FROM students s JOIN predictions p ON s.student_id = p.student_id
 WHERE p.prediction_date = (SELECT MAX(prediction_date) FROM predictions WHERE student_id = s.student_id)`;

const HIGH_CRITICAL = "SELECT * FROM student_risk_summary WHERE risk_category IN ('high', 'critical')";
const FLOOR = 'bench_client_floor';

const QUERIES: Array<{ name: string; sql: string; params?: unknown[]; target?: string }> = [
  { name: 'documented student_risk_summary (correlated subquery), full', sql: DOCUMENTED },
  { name: 'student_risk_summary, full', sql: 'SELECT * FROM student_risk_summary' },
  {
    name: 'latest risk high or critical',
    sql: HIGH_CRITICAL,
    target: '< 20 ms',
  },
  {
    // What the clients cost by themselves: the same rows from a table of just them, one dense scan on the server.
    name: "the same rows from a table holding only them (the clients' floor)",
    sql: `SELECT * FROM ${FLOOR}`,
  },
  {
    name: "one student's row",
    sql: 'SELECT * FROM student_risk_summary WHERE student_id = $1',
    params: ['STU0012345'],
    target: '< 1 ms',
  },
  {
    name: 'documented: more than five absences/tardies in 30 days (live aggregate)',
    sql: `SELECT s.student_id, s.first_name, s.last_name, s.grade_level, r.absences_30d, r.tardies_30d, r.issues_30d
            FROM (SELECT a.student_id, count(*) FILTER (WHERE a.status = 'absent') AS absences_30d,
                         count(*) FILTER (WHERE a.status = 'tardy') AS tardies_30d, count(*) AS issues_30d
                    FROM attendance_records a WHERE a.date >= current_date - 30 AND a.status IN ('absent', 'tardy')
                   GROUP BY a.student_id HAVING count(*) > 5) r JOIN students s USING (student_id)`,
  },
  {
    name: 'more than five absences/tardies in 30 days',
    sql: 'SELECT * FROM student_attendance_concerns',
    target: '< 100 ms',
  },
];

async function time(c: PgClient, sql: string, params: unknown[] = []): Promise<{ ms: number; rows: number }> {
  const t0 = performance.now();
  const r = await c.query(sql, params);
  return { ms: performance.now() - t0, rows: r.rowCount ?? 0 };
}

async function serverMs(c: PgClient, sql: string, params: unknown[] = []): Promise<number> {
  const plan = await c.query(`EXPLAIN (ANALYZE, TIMING OFF) ${sql}`, params);
  return Number(/Execution Time: ([\d.]+)/.exec(plan.rows.map((r) => r['QUERY PLAN']).join('\n'))![1]);
}

/** psql's own \\timing over RUNS executions in one session, output discarded; the password goes by environment. */
async function psqlMs(sql: string, params: unknown[] = []): Promise<number[]> {
  const literal = params.reduce<string>((q, p, i) => q.replace(`$${i + 1}`, `'${String(p).replace(/'/g, "''")}'`), sql);
  const script = ['\\timing on', ...Array.from({ length: RUNS + 1 }, () => `${literal};`)].join('\n');
  const r = await run(
    stack.ctx.pg.bin('psql'),
    [
      '-X',
      '-q',
      '-A',
      '-o',
      '/dev/null',
      '-h',
      '127.0.0.1',
      '-p',
      String(stack.ctx.settings.postgres.port),
      '-U',
      stack.secrets.postgres.superuser,
      '-d',
      stack.ctx.settings.postgres.database,
      '-f',
      '-',
    ],
    { input: script, env: { PGPASSWORD: stack.secrets.postgres.password } },
  );
  return [...r.stdout.matchAll(/Time: ([\d.]+) ms/g)].map((m) => Number(m[1])).slice(1);
}

const stack = await startTestStack();
try {
  const owner = migratorConfig(stack.pg, readSecrets(stack.ctx.paths.secretsFile)!.roles[declarations.migrator]!);
  const today = new Date().toISOString().slice(0, 10);
  console.log(`bench:queries: seeding ${STUDENTS.toLocaleString()} students (school year up to ${today})...`);
  const loaded = await seed(owner, { seed: 'bench', students: STUDENTS, yearEnd: today }, { existing: 'refuse' });
  console.log(
    `  ${loaded.totalRows.toLocaleString()} rows in ${loaded.seconds.toFixed(1)} s = ${Math.round(loaded.rowsPerSecond).toLocaleString()} rows/s end to end (constraints valid, derived tables exact); ${Object.entries(
      loaded.phases,
    )
      .map(([k, v]) => `${k} ${v.toFixed(1)} s`)
      .join(', ')}`,
  );
  await withClient(stack.pg, (c) => c.query(`VACUUM ANALYZE ${[...SEED_TABLES, ...DERIVED_TABLES].join(', ')}`));
  await withClient(stack.pg, async (c) => {
    await c.query(`CREATE TABLE ${FLOOR} AS ${HIGH_CRITICAL}`);
    await c.query(`VACUUM ANALYZE ${FLOOR}`);
  });
  const sizes = await withClient(stack.pg, async (c) =>
    (
      await c.query<{ rel: string; mb: string }>(
        // A partitioned table's size is its partitions' (pg_partition_tree: itself and every partition).
        `SELECT c.oid::regclass::text AS rel,
                round((SELECT sum(pg_total_relation_size(t.relid)) FROM pg_partition_tree(c.oid) t) / 1048576.0) AS mb
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname IN ('public', 'edupulse_derived') AND c.relname <> '${FLOOR}'
            AND (SELECT sum(pg_total_relation_size(t.relid)) FROM pg_partition_tree(c.oid) t) > 1048576
          UNION ALL SELECT 'database', round(pg_database_size(current_database()) / 1048576.0) ORDER BY 2 DESC`,
      )
    ).rows.map((r) => `${r.rel} ${r.mb} MB`),
  );
  console.log(`  sizes (tables with their indexes and TOAST): ${sizes.join(', ')}`);
  const lines: string[] = [];
  const plans: string[] = [];
  const server: Record<string, number> = {};
  const psql: Record<string, number> = {};
  await withClient(stack.pg, async (c) => {
    for (const q of QUERIES) {
      await time(c, q.sql, q.params); // warm the cache
      const runs: number[] = [];
      const serverRuns: number[] = [];
      let rows = 0;
      for (let i = 0; i < RUNS; i++) {
        const t = await time(c, q.sql, q.params);
        runs.push(t.ms);
        rows = t.rows;
        serverRuns.push(await serverMs(c, q.sql, q.params));
      }
      server[q.name] = median(serverRuns);
      psql[q.name] = median(await psqlMs(q.sql, q.params));
      lines.push(
        `| ${q.name} | ${rows.toLocaleString()} | ${server[q.name]!.toFixed(2)} ms | ${psql[q.name]!.toFixed(2)} ms | ${median(runs).toFixed(2)} ms | ${q.target ?? ''} |`,
      );
      const plan = await c.query(`EXPLAIN (ANALYZE, BUFFERS) ${q.sql}`, q.params ?? []);
      plans.push(`### ${q.name}\n\n\`\`\`\n${q.sql}\n\n${plan.rows.map((r) => r['QUERY PLAN']).join('\n')}\n\`\`\`\n`);
    }
  });
  // What constraint_exclusion = on (the stack's setting, for the view's UNION ALL) costs the planner: simple
  // queries planned under it and under PostgreSQL's default, alternating, medians of the server's planning time.
  const planning: string[] = [];
  await withClient(stack.pg, async (c) => {
    const simple: Array<[string, string]> = [
      ["one student's row (the view)", "SELECT * FROM student_risk_summary WHERE student_id = 'STU0012345'"],
      ['a student by key', "SELECT * FROM students WHERE student_id = 'STU0012345'"],
      [
        "a student's attendance for a month",
        "SELECT * FROM attendance_records WHERE student_id = 'STU0012345' AND date >= current_date - 30",
      ],
      [
        "a student's latest predictions",
        "SELECT * FROM predictions WHERE student_id = 'STU0012345' AND risk_score BETWEEN 0.5 AND 1",
      ],
    ];
    for (const [name, sql] of simple) {
      const ms: Record<string, number[]> = { partition: [], on: [] };
      for (let i = 0; i < 200; i++)
        for (const mode of i % 2 ? ['on', 'partition'] : ['partition', 'on']) {
          await c.query(`SET constraint_exclusion = ${mode}`);
          const plan = await c.query(`EXPLAIN (SUMMARY) ${sql}`);
          ms[mode]!.push(Number(/Planning Time: ([\d.]+)/.exec(plan.rows.map((r) => r['QUERY PLAN']).join('\n'))![1]));
        }
      planning.push(
        `| ${name} | ${median(ms.partition!).toFixed(3)} ms | ${median(ms.on!).toFixed(3)} ms | ${(median(ms.on!) / median(ms.partition!)).toFixed(2)}x |`,
      );
    }
    await c.query('RESET constraint_exclusion');
  });
  const PLANNING_HEADER = '| query | planning, partition (default) | planning, on (the stack) | ratio |';
  const [doc, ours] = [QUERIES[0]!.name, QUERIES[1]!.name];
  const ratio = `server ${(server[doc]! / server[ours]!).toFixed(1)}x, psql end to end ${(psql[doc]! / psql[ours]!).toFixed(1)}x`;
  const report = [
    `# bench:queries, ${new Date().toISOString()}`,
    '',
    `${STUDENTS.toLocaleString()} students, ${loaded.rows.attendance_records!.toLocaleString()} attendance rows, ${loaded.rows.predictions!.toLocaleString()} predictions; PostgreSQL ${stack.ctx.pg.version}; median of ${RUNS} runs, client-side, all rows fetched.`,
    '',
    `Seed: ${loaded.totalRows.toLocaleString()} rows in ${loaded.seconds.toFixed(1)} s (${Math.round(loaded.rowsPerSecond).toLocaleString()} rows/s). Sizes: ${sizes.join(', ')}.`,
    '',
    HEADER,
    '|---|---|---|---|---|---|',
    ...lines,
    '',
    `student_risk_summary full scan vs the documented definition: ${ratio} faster (target: at least 20x)`,
    '',
    'constraint_exclusion, planning time (median of 200 alternating runs each):',
    '',
    PLANNING_HEADER,
    '|---|---|---|---|',
    ...planning,
    '',
    '## Plans',
    '',
    ...plans,
  ].join('\n');
  const dir = join(PROJECT_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'queries.md'), report);
  console.log([HEADER, ...lines].join('\n'));
  console.log(`ratio documented/ours (full scan): ${ratio}  (target >= 20x); plans in bench/results/queries.md`);
  console.log([PLANNING_HEADER, ...planning].join('\n'));
} finally {
  await stack.stop();
}
