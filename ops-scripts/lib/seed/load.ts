// Loads generated rows with COPY (pg-copy-streams), all in one transaction:
// a job that dies leaves the database as it was. The per-row foreign-key
// check is what makes a plain COPY slow, so the foreign keys to students are
// dropped for the load and added back NOT VALID, then VALIDATEd in one pass,
// before COMMIT: no invalid data is ever visible, nor committed.
import { once } from 'node:events';
import { from as copyFrom } from 'pg-copy-streams';
import { quoteIdent, withClient, withTransaction, type PgClient, type PgConfig } from '../db.ts';
import { refused } from '../errors.ts';
import { dropSnapshotIndex, recreateIndex, snapshotIndexes } from '../../../views/engine/index.ts';
import { GENERATORS, tableChunks, type SeedSpec, type TableGenerator } from './generate.ts';

export const SEED_TABLES = GENERATORS.map((g) => g.table);
/** The tables the triggers keep from the seeded ones; a load recounts them at its end. */
export const DERIVED_TABLES = [
  'edupulse_derived.latest_predictions',
  'edupulse_derived.latest_high',
  'edupulse_derived.attendance_issue_counts',
  'edupulse_derived.attendance_window',
];

export type ExistingData = 'refuse' | 'append' | 'truncate';

export interface SeedResult {
  rows: Record<string, number>;
  totalRows: number;
  seconds: number;
  rowsPerSecond: number;
  offset: number;
  /** Seconds per phase: COPY, secondary index builds, derived tables recounted, foreign keys validated. */
  phases: { copy: number; indexes: number; derived: number; foreignKeys: number };
}

/**
 * Where a table's rows go: the table, or for a partitioned one the partition whose range holds every day the
 * generator makes (straight into it: no routing per row, and COPY FREEZE, which a partitioned table refuses).
 * The default partition is never chosen (it is no range). Undefined: into the partitioned table, unfrozen.
 */
async function copyTarget(client: PgClient, gen: TableGenerator, spec: SeedSpec): Promise<string | undefined> {
  const { rows } = await client.query<{ kind: string }>(
    'SELECT relkind AS kind FROM pg_class WHERE oid = $1::regclass',
    [quoteIdent(gen.table)],
  );
  if (rows[0]?.kind !== 'p') return quoteIdent(gen.table);
  if (!gen.dates) return undefined;
  const [first, last] = gen.dates.range(spec);
  const { rows: parts } = await client.query<{ name: string; cond: string }>(
    `SELECT c.oid::regclass::text AS name, pg_get_partition_constraintdef(c.oid) AS cond
       FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
      WHERE h.inhparent = $1::regclass AND c.relkind = 'r' AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'`,
    [quoteIdent(gen.table)],
  );
  for (const p of parts) {
    const { rows: ok } = await client.query<{ ok: boolean }>(
      `SELECT bool_and(${p.cond}) AS ok FROM (VALUES ($1::date), ($2::date)) v (${quoteIdent(gen.dates.column)})`,
      [first, last],
    );
    if (ok[0]?.ok) return p.name;
  }
  return undefined;
}

async function copyTable(
  client: PgClient,
  gen: TableGenerator,
  spec: SeedSpec,
  freeze: boolean,
  onRows: (n: number) => void,
): Promise<number> {
  const cols = gen.columns.map(quoteIdent).join(', ');
  const target = await copyTarget(client, gen, spec);
  const into = target ?? quoteIdent(gen.table);
  const stream = client.query(copyFrom(`COPY ${into} (${cols}) FROM STDIN${freeze && target ? ' WITH (FREEZE)' : ''}`));
  const done = new Promise<void>((resolve, reject) => {
    stream.on('finish', resolve);
    stream.on('error', reject);
  });
  let rows = 0;
  for (const chunk of tableChunks(gen, spec)) {
    rows += chunk.rows;
    onRows(chunk.rows);
    if (!stream.write(chunk.text)) await Promise.race([once(stream, 'drain'), done]);
  }
  stream.end();
  await done;
  return rows;
}

interface ForeignKey {
  table: string;
  name: string;
  definition: string;
  partitioned: boolean;
}

/** The foreign keys to `table`; a partition's (inherited from its table's) go and come back with that one. */
async function foreignKeysTo(client: PgClient, table: string): Promise<ForeignKey[]> {
  const { rows } = await client.query<ForeignKey>(
    `SELECT k.conrelid::regclass::text AS table, k.conname AS name, pg_get_constraintdef(k.oid) AS definition,
            c.relkind = 'p' AS partitioned
       FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
      WHERE k.contype = 'f' AND k.confrelid = $1::regclass AND k.conparentid = 0 ORDER BY 1, 2`,
    [table],
  );
  return rows;
}

/** Where appended students start: after the highest generated id present. */
async function nextIndex(client: PgClient): Promise<number> {
  const { rows } = await client.query<{ n: number | null }>(
    "SELECT max(substring(student_id FROM 4)::int) AS n FROM students WHERE student_id ~ '^STU[0-9]{7}$'",
  );
  return rows[0]?.n ?? 0;
}

export async function seed(
  config: PgConfig,
  spec: Omit<SeedSpec, 'offset'>,
  opts: {
    existing: ExistingData;
    onRows?: (n: number) => void;
  },
): Promise<SeedResult> {
  const started = performance.now();
  return withClient(config, async (client) => {
    const counts = await client.query<{ table: string; any: boolean }>(
      SEED_TABLES.map((t) => `SELECT '${t}' AS table, EXISTS (SELECT 1 FROM ${quoteIdent(t)}) AS any`).join(
        ' UNION ALL ',
      ),
    );
    const nonEmpty = counts.rows.filter((r) => r.any).map((r) => r.table);
    if (nonEmpty.length && opts.existing === 'refuse') {
      throw refused(
        `the database already holds data (${nonEmpty.join(', ')}); seed changed nothing`,
        'add --append to add more students, or --truncate to replace everything',
      );
    }
    const offset = opts.existing === 'append' ? await nextIndex(client) : 0;
    const full: SeedSpec = { ...spec, offset };
    const rows: Record<string, number> = {};
    const phases = { copy: 0, indexes: 0, derived: 0, foreignKeys: 0 };
    await withTransaction(client, async () => {
      await client.query("SET LOCAL lock_timeout = '10s'");
      // A table truncated in this transaction can take COPY FREEZE: rows are born frozen, no later rewrite by VACUUM.
      const freeze = opts.existing !== 'append';
      // CASCADE: tables derived from these (the latest-prediction table) are emptied with them.
      if (freeze) await client.query(`TRUNCATE ${SEED_TABLES.map(quoteIdent).join(', ')} RESTART IDENTITY CASCADE`);
      const fks = await foreignKeysTo(client, 'students');
      for (const fk of fks) await client.query(`ALTER TABLE ${fk.table} DROP CONSTRAINT ${quoteIdent(fk.name)}`);
      // User triggers off for this transaction only (a rollback restores them). The fill-null-defaults ones have
      // nothing to do (the seeder never sends a NULL for a defaulted column), but any BEFORE ROW trigger makes COPY
      // give up its multi-row inserts (measured: 257k vs 191k rows/s); the derived tables' statement triggers are
      // replaced by one recount each after the load.
      for (const t of SEED_TABLES) await client.query(`ALTER TABLE ${quoteIdent(t)} DISABLE TRIGGER USER`);
      // Into emptied tables, the secondary indexes are built once after COPY (one sort each) instead of
      // maintained row by row; each comes back with its definition and comment (the reconcile engine's marker).
      const indexes = freeze ? await snapshotIndexes(client, SEED_TABLES) : [];
      for (const ix of indexes) await client.query(dropSnapshotIndex(ix));
      let mark = performance.now();
      const lap = () => {
        const now = performance.now();
        const seconds = (now - mark) / 1000;
        mark = now;
        return seconds;
      };
      for (const gen of GENERATORS)
        rows[gen.table] = await copyTable(client, gen, full, freeze, opts.onRows ?? (() => {}));
      phases.copy = lap();
      await client.query("SET LOCAL maintenance_work_mem = '512MB'");
      for (const ix of indexes) await recreateIndex(client, ix);
      phases.indexes = lap();
      for (const t of SEED_TABLES) await client.query(`ALTER TABLE ${quoteIdent(t)} ENABLE TRIGGER USER`);
      await client.query('SELECT edupulse_derived.rebuild_latest_predictions()');
      await client.query(
        'SELECT edupulse_derived.rebuild_attendance_counts((SELECT as_of FROM edupulse_derived.attendance_window))',
      );
      phases.derived = lap();
      for (const fk of fks) {
        // PostgreSQL 15 has no NOT VALID foreign key on a partitioned table: added, it checks each partition.
        if (fk.partitioned) {
          await client.query(`ALTER TABLE ${fk.table} ADD CONSTRAINT ${quoteIdent(fk.name)} ${fk.definition}`);
          continue;
        }
        await client.query(`ALTER TABLE ${fk.table} ADD CONSTRAINT ${quoteIdent(fk.name)} ${fk.definition} NOT VALID`);
        await client.query(`ALTER TABLE ${fk.table} VALIDATE CONSTRAINT ${quoteIdent(fk.name)}`);
      }
      phases.foreignKeys = lap();
    });
    const totalRows = Object.values(rows).reduce((a, b) => a + b, 0);
    const seconds = (performance.now() - started) / 1000;
    return { rows, totalRows, seconds, rowsPerSecond: totalRows / seconds, offset, phases };
  });
}

/** Roughly how many rows a run makes, for a progress bar. */
export const estimateRows = (students: number) => students * (1 + 180 + 40 + 0.4 + 10);
