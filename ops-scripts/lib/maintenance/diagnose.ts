// Diagnostics, each finding with a suggested action: top queries from
// pg_stat_statements (installed in the maintenance database `postgres`, so no
// extension objects land in the application's schema), lock waits as blocking
// trees, idle-in-transaction sessions, bloat estimates from statistics, unused
// and duplicate indexes.
import { withClient, type PgClient, type PgConfig } from '../db.ts';

export interface Finding {
  section: string;
  object: string;
  detail: string;
  suggestion: string;
}

const short = (q: string) => q.replace(/\s+/g, ' ').trim().slice(0, 120);

async function topQueries(maintenance: PgConfig, database: string): Promise<Finding[]> {
  return withClient(maintenance, async (c) => {
    const ok =
      (await c.query("SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'pg_stat_statements'")).rows[0].n > 0;
    if (!ok)
      return [
        {
          section: 'top queries',
          object: 'pg_stat_statements',
          detail: 'the extension is not installed in the postgres database',
          suggestion: 'run `npm run up` (it installs it), or CREATE EXTENSION pg_stat_statements there',
        },
      ];
    const out: Finding[] = [];
    for (const [by, order] of [
      ['total', 'total_exec_time'],
      ['mean', 'mean_exec_time'],
    ] as const) {
      const { rows } = await c.query(
        `SELECT query, calls, total_exec_time AS total, mean_exec_time AS mean, rows
          FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
         WHERE d.datname = $1 AND query NOT ILIKE '%pg_stat_statements%' ORDER BY ${order} DESC LIMIT 5`,
        [database],
      );
      for (const r of rows) {
        out.push({
          section: `top queries by ${by} time`,
          object: short(r.query),
          detail: `${r.calls} calls, ${Number(r.total).toFixed(1)} ms total, ${Number(r.mean).toFixed(2)} ms mean, ${r.rows} rows`,
          suggestion: /^\s*(COPY|VACUUM|ANALYZE|CREATE INDEX|REINDEX)\b/i.test(r.query)
            ? 'maintenance or a bulk load/dump: expected to be heavy; keep it off-peak'
            : 'EXPLAIN (ANALYZE, BUFFERS) it; look for sequential scans on large tables and a missing index on its filter',
        });
      }
    }
    return out;
  });
}

async function lockTrees(c: PgClient): Promise<Finding[]> {
  const { rows } = await c.query<{
    pid: number;
    blockers: number[];
    state: string;
    query: string;
    app: string;
    waiting: number;
  }>(
    `SELECT pid, pg_blocking_pids(pid) AS blockers, state, left(query, 200) AS query, application_name AS app,
            extract(epoch FROM now() - coalesce(query_start, backend_start))::float8 AS waiting
       FROM pg_stat_activity WHERE backend_type = 'client backend'`,
  );
  const byPid = new Map(rows.map((r) => [r.pid, r]));
  const blocked = rows.filter((r) => r.blockers.length > 0);
  const roots = [...new Set(blocked.flatMap((r) => r.blockers))].filter((p) => !byPid.get(p)?.blockers.length);
  const tree = (pid: number, depth: number): string[] =>
    blocked
      .filter((r) => r.blockers.includes(pid))
      .flatMap((r) => [
        `${'  '.repeat(depth)}└ pid ${r.pid} waits ${r.waiting.toFixed(0)}s: ${short(r.query)}`,
        ...tree(r.pid, depth + 1),
      ]);
  return roots.map((root) => {
    const r = byPid.get(root);
    return {
      section: 'lock waits',
      object: `pid ${root} (${r?.app || 'no application name'}, ${r?.state ?? 'unknown'})`,
      detail: [`blocks: ${short(r?.query ?? '')}`, ...tree(root, 1)].join('\n'),
      suggestion: r?.state?.startsWith('idle in transaction')
        ? `it is idle in a transaction: end it (SELECT pg_terminate_backend(${root})) and fix the client that left it open`
        : 'let it finish, or cancel it (pg_cancel_backend) if it is stuck',
    };
  });
}

async function idleInTransaction(c: PgClient): Promise<Finding[]> {
  const { rows } =
    await c.query(`SELECT pid, application_name AS app, extract(epoch FROM now() - state_change)::float8 AS idle, left(query, 200) AS query
      FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND now() - state_change > interval '30 seconds'`);
  return rows.map((r) => ({
    section: 'idle in transaction',
    object: `pid ${r.pid} (${r.app || 'no application name'})`,
    detail: `idle in a transaction for ${Number(r.idle).toFixed(0)}s; last query: ${short(r.query)}`,
    suggestion:
      'it holds locks and the xmin horizon: end it, and set idle_in_transaction_session_timeout for the application role',
  }));
}

async function bloat(c: PgClient): Promise<Finding[]> {
  // Statistics-based: dead-row share of tables, and btree indexes against the size their rows need. Sizes come
  // from pg_class.relpages, never pg_*_relation_size(), which opens the relation and so waits behind a lock held
  // on it: diagnose is run exactly when something holds one.
  const tables = (
    await c.query(`SELECT format('%I.%I', s.schemaname, s.relname) AS t, s.n_dead_tup::float8 AS dead, s.n_live_tup::float8 AS live,
      (c.relpages::float8 + coalesce(tc.relpages, 0)) * current_setting('block_size')::float8 AS size
      FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid LEFT JOIN pg_class tc ON tc.oid = c.reltoastrelid
     WHERE s.n_dead_tup > 1000 AND s.n_dead_tup > 0.2 * greatest(s.n_live_tup, 1)`)
  ).rows;
  const indexes = (
    await c.query(`
    SELECT format('%I.%I', n.nspname, ic.relname) AS i, ic.relpages::float8 AS pages,
           ceil(tc.reltuples * (coalesce((SELECT sum(s.avg_width) FROM pg_attribute a JOIN pg_stats s
                  ON s.schemaname = n.nspname AND s.tablename = tc.relname AND s.attname = a.attname
                 WHERE a.attrelid = tc.oid AND a.attnum = ANY (x.indkey)), 8) + 16)
                / (current_setting('block_size')::float8 * 0.9))::float8 AS expected
      FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid JOIN pg_class tc ON tc.oid = x.indrelid
      JOIN pg_namespace n ON n.oid = ic.relnamespace JOIN pg_am am ON am.oid = ic.relam
     WHERE am.amname = 'btree' AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' AND ic.relpages > 128`)
  ).rows.filter((r) => r.pages > 2 * r.expected + 64);
  return [
    ...tables.map((r) => ({
      section: 'bloat (statistics estimate)',
      object: r.t,
      detail: `${r.dead} dead rows against ${r.live} live (${((100 * r.dead) / (r.dead + r.live)).toFixed(0)}%), ${(r.size / 1048576).toFixed(1)} MB`,
      suggestion:
        'npm run vacuum; if it stays bloated, look for what holds the xmin horizon (vacuum --dry-run names it)',
    })),
    ...indexes.map((r) => ({
      section: 'bloat (statistics estimate)',
      object: r.i,
      detail: `${r.pages} pages where its rows need about ${r.expected}`,
      suggestion: `REINDEX INDEX CONCURRENTLY ${r.i}`,
    })),
  ];
}

async function indexUse(c: PgClient, declared: Set<string>): Promise<Finding[]> {
  // A partition's index is judged with its tree: the partitioned index (on attendance_records) is scanned through
  // its partitions, and one partition's index cannot be dropped by itself, nor a partitioned one CONCURRENTLY.
  const unused = (
    await c.query(`WITH leaf AS (
      SELECT coalesce(pg_partition_root(s.indexrelid), s.indexrelid) AS root, s.idx_scan,
             (SELECT relpages FROM pg_class WHERE oid = s.indexrelid)::float8 * current_setting('block_size')::float8 AS size
        FROM pg_stat_user_indexes s)
    SELECT format('%I.%I', n.nspname, ic.relname) AS i, ic.relname AS name, ic.relkind = 'I' AS partitioned,
           count(*)::int AS parts, sum(l.size) AS size
      FROM leaf l JOIN pg_class ic ON ic.oid = l.root JOIN pg_namespace n ON n.oid = ic.relnamespace
      JOIN pg_index x ON x.indexrelid = l.root
     WHERE NOT x.indisunique AND NOT x.indisprimary
       AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = l.root)
     GROUP BY 1, 2, 3 HAVING sum(l.idx_scan) = 0 ORDER BY 5 DESC`)
  ).rows;
  const dupes = (
    await c.query(`
    SELECT format('%I.%I', n.nspname, a.relname) AS redundant, format('%I.%I', n.nspname, b.relname) AS covering, a.relname AS name
      FROM pg_index xa JOIN pg_index xb ON xa.indrelid = xb.indrelid AND xa.indexrelid <> xb.indexrelid
      JOIN pg_class a ON a.oid = xa.indexrelid JOIN pg_class b ON b.oid = xb.indexrelid JOIN pg_namespace n ON n.oid = a.relnamespace
     WHERE a.relam = b.relam AND NOT xa.indisunique AND xa.indpred IS NULL AND xb.indpred IS NULL AND NOT a.relispartition
       AND xa.indexprs IS NULL AND xb.indexprs IS NULL
       AND (xb.indkey::text = xa.indkey::text OR (xb.indkey::text LIKE xa.indkey::text || ' %'))
       AND (xb.indkey::text <> xa.indkey::text OR xa.indexrelid > xb.indexrelid)`)
  ).rows;
  return [
    ...unused.map((r) => ({
      section: 'unused indexes',
      object: r.i,
      detail: `never scanned since statistics were reset${r.partitioned ? ` (partitioned: none of its ${r.parts} partitions' indexes)` : ''}, ${(r.size / 1048576).toFixed(1)} MB`,
      suggestion: declared.has(r.name)
        ? 'declared in views/indexes.ts: if no query needs it, remove it there and apply'
        : r.partitioned
          ? `DROP INDEX ${r.i} (after checking replicas and monthly jobs; a partitioned index is dropped whole, not CONCURRENTLY, and locks its table)`
          : `DROP INDEX CONCURRENTLY ${r.i} (after checking replicas and monthly jobs)`,
    })),
    ...dupes.map((r) => ({
      section: 'duplicate indexes',
      object: r.redundant,
      detail: `its columns are a leading prefix of (or equal to) ${r.covering}`,
      suggestion: declared.has(r.name)
        ? 'declared in views/indexes.ts: remove one of the two declarations'
        : `DROP INDEX CONCURRENTLY ${r.redundant}`,
    })),
  ];
}

export async function diagnose(app: PgConfig, maintenance: PgConfig, declaredIndexes: string[]): Promise<Finding[]> {
  const findings = await topQueries(maintenance, String(app.database));
  await withClient({ ...app, application_name: 'edupulse-db diagnose' }, async (c) => {
    findings.push(
      ...(await lockTrees(c)),
      ...(await idleInTransaction(c)),
      ...(await bloat(c)),
      ...(await indexUse(c, new Set(declaredIndexes))),
    );
  });
  return findings;
}
