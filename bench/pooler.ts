// npm run bench:pooler: the documented application's pattern (many short
// transactions from many connections: 200 clients, each a loop of
// one-round-trip transactions reading a student and touching its row) run
// directly against PostgreSQL and then through PgBouncer (transaction pooling,
// the settings' pool sizes), side by side in one run. Reported: clients that
// got a connection, transactions/s, and the server's client connections
// (peak, sampled). Directly, the server and the app login's connection limit
// (50) refuse most of the 200; through PgBouncer all 200 are served by a few
// server connections.
import pg from 'pg';
import { declarations } from '../roles/declarations.ts';
import { migratorConfig } from '../migrations/engine/migrate.ts';
import { withClient, type PgConfig } from '../ops-scripts/lib/db.ts';
import { freePort } from '../ops-scripts/lib/ports.ts';
import { readSecrets } from '../ops-scripts/lib/secrets.ts';
import { seed } from '../ops-scripts/lib/seed/load.ts';
import { startTestStack } from '../test/harness.ts';

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const STUDENTS = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const stack = await startTestStack({
  env: { EDUPULSE_POOLER: 'on', EDUPULSE_POOLER_PORT: String(await freePort()) },
});

async function load(cfg: PgConfig, admin: PgConfig, ids: string[]) {
  const clients: pg.Client[] = [];
  const refused: Record<string, number> = {};
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      const c = new pg.Client({ ...cfg, connectionTimeoutMillis: 10_000 });
      c.on('error', () => {});
      try {
        await c.connect();
        clients.push(c);
      } catch (err) {
        const m = (err as Error).message.replace(/"[^"]*"/g, '"…"');
        refused[m] = (refused[m] ?? 0) + 1;
      }
    }),
  );
  let done = 0,
    failed = 0,
    peak = 0,
    stop = false;
  const sampler = (async () => {
    await withClient(admin, async (c) => {
      while (!stop) {
        const n = (
          await c.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename = 'app_user'`,
          )
        ).rows[0]!.n;
        peak = Math.max(peak, n);
        await sleep(200);
      }
    });
  })();
  const t0 = performance.now();
  const until = t0 + SECONDS * 1000;
  await Promise.all(
    clients.map(async (c, i) => {
      let k = i;
      while (performance.now() < until) {
        const id = ids[k++ % ids.length]!;
        try {
          await c.query(
            `BEGIN; SELECT student_id, grade_level FROM students WHERE student_id = '${id}'; UPDATE students SET updated_at = now() WHERE student_id = '${id}'; COMMIT;`,
          );
          done++;
        } catch (err) {
          if (!failed) console.log(`first failure: ${(err as Error).message}`);
          failed++;
          await c.query('ROLLBACK').catch(() => {});
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  stop = true;
  await sampler;
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
  return { connected: clients.length, refused, tps: done / seconds, failed, peak };
}

try {
  const secrets = readSecrets(stack.ctx.paths.secretsFile)!;
  const owner = migratorConfig(stack.pg, secrets.roles[declarations.migrator]!);
  await seed(owner, { seed: 'bench', students: STUDENTS, yearEnd: '2026-06-12' }, { existing: 'refuse' });
  const app = stack.login('app_user');
  const ids = await withClient(owner, async (c) =>
    (await c.query<{ id: string }>('SELECT student_id AS id FROM students')).rows.map((r) => r.id),
  );
  const direct = await load(app, stack.pg, ids);
  await sleep(1000);
  const pooled = await load({ ...app, port: stack.ctx.settings.pooler.port }, stack.pg, ids);
  const max = await withClient(stack.pg, async (c) => (await c.query('SHOW max_connections')).rows[0].max_connections);
  console.log(
    `\nbench:pooler: ${CLIENTS} clients, ${SECONDS} s each way, one-round-trip transactions (read a student, touch its row); max_connections ${max}, app_user connection limit 50, pool ${stack.ctx.settings.pooler.poolMode} ${stack.ctx.settings.pooler.defaultPoolSize}+${stack.ctx.settings.pooler.reservePoolSize}`,
  );
  console.log('| path | clients connected | refused | transactions/s | failed | server connections (peak) |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, r] of [
    ['direct', direct],
    ['PgBouncer', pooled],
  ] as const)
    console.log(
      `| ${name} | ${r.connected} of ${CLIENTS} | ${
        Object.entries(r.refused)
          .map(([m, n]) => `${n}: ${m}`)
          .join('; ') || '0'
      } | ${r.tps.toFixed(0)} | ${r.failed} | ${r.peak} |`,
    );
  console.log(
    `ratio: PgBouncer serves ${pooled.connected}/${direct.connected} = ${(pooled.connected / Math.max(1, direct.connected)).toFixed(1)}x the clients at ${(pooled.tps / direct.tps).toFixed(2)}x the transactions/s with ${pooled.peak}/${direct.peak} of the server connections`,
  );
} finally {
  await stack.stop();
}
