// Applies a plan: indexes built CONCURRENTLY (a changed or invalid one is
// built under a temporary name, then swapped in), views replaced in one
// transaction each, every statement under lock_timeout. A step that cannot
// get its lock fails naming the table and who holds it, and leaves nothing
// half-made behind (an invalid index it started is dropped).
import {
  indexes as declaredIndexes,
  loadViews,
  partitions as declaredPartitions,
  type IndexDecl,
  type ViewDecl,
} from '../index.ts';
import { withClient, withTransaction, type PgClient, type PgConfig } from '../../ops-scripts/lib/db.ts';
import { describeError, failed, ToolkitError } from '../../ops-scripts/lib/errors.ts';
import type { StepStatus } from '../../ops-scripts/lib/logger.ts';
import { liveIndex, readObjects, viewFingerprint } from './catalog.ts';
import { createPartition, retirePartition } from './partitions.ts';
import { describeAction, plan, type Action, type Declared } from './plan.ts';
import * as sql from './sql.ts';

export interface ReconcileStep {
  action: string;
  status: StepStatus;
  detail?: string;
}
export interface ReconcileOptions {
  lockTimeout?: string;
}

export const projectDeclarations = (): Declared => ({
  indexes: declaredIndexes,
  views: loadViews(),
  partitions: declaredPartitions,
});

export async function planReconcile(client: PgClient, declared: Declared = projectDeclarations()): Promise<Action[]> {
  return plan(declared, await readObjects(client, declared.partitions));
}

/** Statements in one transaction; a lock not had within lock_timeout names `tables` and who holds them. */
async function inTransaction(client: PgClient, statements: string[], what: string, tables: string[]): Promise<void> {
  try {
    await withTransaction(client, async () => {
      for (const s of statements) await client.query(s);
    });
  } catch (err) {
    await explainLockTimeout(client, err, what, tables);
  }
}

/** Strong locks other sessions hold on `tables`: the reason a statement timed out. */
async function lockHolders(client: PgClient, tables: string[]): Promise<string> {
  const { rows } = await client.query<{ rel: string; pid: number; mode: string }>(
    `SELECT l.relation::regclass::text AS rel, l.pid, l.mode FROM pg_locks l
      WHERE l.granted AND l.pid <> pg_backend_pid() AND l.relation = ANY ($1::regclass[])
        AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock', 'ShareUpdateExclusiveLock')
      ORDER BY 1, 2`,
    [tables],
  );
  return rows.map((r) => `${r.rel} (pid ${r.pid}, ${r.mode})`).join(', ');
}

async function viewTables(client: PgClient, v: ViewDecl): Promise<string[]> {
  // The tables the view reads, as the server resolves them in its query.
  const { rows } = await client.query<{ t: string }>(
    `SELECT DISTINCT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
        AND $1 ~* ('\\m' || c.relname || '\\M')`,
    [v.query],
  );
  return rows
    .map((r) => r.t)
    .filter((t) => !t.endsWith(`.${v.name}`))
    .concat(`${v.schema}.${v.name}`);
}

async function explainLockTimeout(client: PgClient, err: unknown, what: string, tables: string[]): Promise<never> {
  if ((err as { code?: string }).code === '55P03') {
    const holders = await lockHolders(client, tables).catch(() => '');
    throw failed(
      `${what}: could not lock ${tables.join(', ')} within lock_timeout${holders ? `; held by ${holders}` : ''}`,
      'wait for those sessions to finish (or end them), then apply again',
    );
  }
  throw err;
}

/** The partitions of a partitioned table (undefined for a plain one); sub-partitioned ones are refused. */
async function partitionsOf(
  client: PgClient,
  d: IndexDecl,
): Promise<Array<{ schema: string; name: string }> | undefined> {
  const { rows } = await client.query<{
    kind: string;
    schema: string | null;
    name: string | null;
    pkind: string | null;
  }>(
    `SELECT t.relkind AS kind, pn.nspname AS schema, p.relname AS name, p.relkind AS pkind
       FROM pg_class t LEFT JOIN pg_inherits h ON h.inhparent = t.oid
       LEFT JOIN pg_class p ON p.oid = h.inhrelid LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace
      WHERE t.oid = to_regclass($1) ORDER BY 3`,
    [sql.qualified(d.schema, d.table)],
  );
  if (rows[0]?.kind !== 'p') return undefined;
  const nested = rows.find((r) => r.pkind === 'p');
  if (nested)
    throw failed(
      `index ${d.schema}.${d.name}: partition ${nested.schema}.${nested.name} of ${d.table} is itself partitioned`,
      'declare indexes on tables partitioned one level deep',
    );
  return rows.filter((r) => r.name !== null).map((r) => ({ schema: r.schema!, name: r.name! }));
}

/** DROP INDEX CONCURRENTLY, or a plain DROP for a partitioned index (which cannot be dropped concurrently). */
async function dropIndexAnyKind(client: PgClient, schema: string, name: string): Promise<void> {
  const { rows } = await client.query<{ kind: string }>(
    'SELECT relkind AS kind FROM pg_class WHERE oid = to_regclass($1)',
    [sql.qualified(schema, name)],
  );
  if (!rows[0]) return;
  await client.query(rows[0].kind === 'I' ? sql.dropIndexInPlace(schema, name) : sql.dropIndex(schema, name));
}

/**
 * Builds `d` under `name`; on failure drops what the build left (an invalid index) and rethrows. On a
 * partitioned table: the parent's index ON ONLY, then each partition's built concurrently and attached,
 * so writers are never blocked for longer than those catalog steps.
 */
async function buildIndex(client: PgClient, d: IndexDecl, name: string): Promise<void> {
  const partitions = await partitionsOf(client, d);
  const children = (partitions ?? []).map((p) => ({ ...p, index: sql.partitionIndexName(name, p.name) }));
  try {
    if (!partitions) {
      await client.query(sql.createIndex(d, name));
      return;
    }
    await client.query(sql.createIndexOnOnly(d, name));
    for (const p of children) {
      await client.query(sql.dropIndex(p.schema, p.index)); // one left by an earlier failed build
      await client.query(sql.createIndex(d, p.index, p));
      await client.query(sql.attachIndex(d.schema, name, p.schema, p.index));
    }
  } catch (err) {
    if (await liveIndex(client, sql.qualified(d.schema, name)))
      await dropIndexAnyKind(client, d.schema, name).catch(() => {});
    for (const p of children) await client.query(sql.dropIndex(p.schema, p.index)).catch(() => {});
    await explainLockTimeout(client, err, `index ${d.schema}.${d.name}`, [`${d.schema}.${d.table}`]);
  }
}

async function markIndex(client: PgClient, d: IndexDecl): Promise<void> {
  const live = await liveIndex(client, sql.qualified(d.schema, d.name));
  if (!live?.valid) throw failed(`index ${d.schema}.${d.name} is not valid after its build`);
  await client.query(sql.commentOnIndex(d.schema, d.name, sql.marker(sql.indexHash(d), live.fingerprint)));
}

async function putView(client: PgClient, v: ViewDecl): Promise<string> {
  let how = 'created or replaced';
  try {
    await withTransaction(client, async () => {
      await client.query('SAVEPOINT replace_view');
      try {
        await client.query(sql.createOrReplaceView(v));
      } catch (err) {
        // The column list changed (renamed, removed or retyped): drop and create in this same transaction.
        if (!['42P16', '42804'].includes((err as { code?: string }).code ?? '')) throw err;
        await client.query('ROLLBACK TO SAVEPOINT replace_view');
        await client.query(sql.dropView(v.schema, v.name));
        await client.query(sql.createOrReplaceView(v));
        how = 'dropped and created (its columns changed)';
      }
      const fingerprint = await viewFingerprint(client, sql.qualified(v.schema, v.name));
      await client.query(sql.commentOnView(v.schema, v.name, sql.marker(sql.viewHash(v), fingerprint)));
    });
  } catch (err) {
    await explainLockTimeout(client, err, `view ${v.schema}.${v.name}`, await viewTables(client, v));
  }
  return how;
}

async function run(client: PgClient, a: Action): Promise<string | undefined> {
  switch (a.kind) {
    case 'create-index':
      await buildIndex(client, a.decl, a.decl.name);
      await markIndex(client, a.decl);
      return 'built concurrently';
    case 'rebuild-index': {
      const tmp = `${a.decl.name}${sql.NEW_SUFFIX}`;
      await dropIndexAnyKind(client, a.decl.schema, tmp);
      await buildIndex(client, a.decl, tmp);
      try {
        await dropIndexAnyKind(client, a.decl.schema, a.decl.name);
      } catch (err) {
        await explainLockTimeout(client, err, `index ${a.decl.schema}.${a.decl.name}`, [
          `${a.decl.schema}.${a.decl.table}`,
        ]);
      }
      await withTransaction(client, async () => {
        await client.query(sql.renameIndex(a.decl.schema, tmp, a.decl.name));
        await markIndex(client, a.decl);
      });
      return 'rebuilt concurrently and swapped';
    }
    case 'drop-index':
      await dropIndexAnyKind(client, a.schema, a.name);
      return 'dropped';
    case 'create-view':
    case 'replace-view':
      return putView(client, a.view);
    case 'drop-view':
      await withTransaction(client, () => client.query(sql.dropView(a.schema, a.name)));
      return 'dropped';
    case 'conflict':
      throw new ToolkitError('failed', `${a.object} ${a.reason}`);
    case 'create-partition': {
      const parent = `${a.decl.schema}.${a.decl.table}`;
      const tables = [
        parent,
        ...(a.defaultPartition ? [`${a.defaultPartition.schema}.${a.defaultPartition.name}`] : []),
      ];
      await inTransaction(client, createPartition(a), `partition ${a.decl.partitionSchema}.${a.name}`, tables);
      return a.defaultPartition ? 'made, its rows moved from the default partition, attached' : 'made and attached';
    }
    case 'retire-partition':
      await inTransaction(client, retirePartition(a), `partition ${a.schema}.${a.name}`, [
        `${a.decl.schema}.${a.decl.table}`,
      ]);
      return 'detached and dropped';
  }
}

/** Plans and applies on one connection (as the owner role); every action reports a step. */
export async function reconcile(
  config: PgConfig,
  opts: ReconcileOptions & { declared?: Declared; dryRun?: boolean; partitionsOnly?: boolean } = {},
): Promise<ReconcileStep[]> {
  return withClient(config, async (client) => {
    await client.query(`SET lock_timeout = '${(opts.lockTimeout ?? '5s').replace(/'/g, '')}'`);
    const actions = (await planReconcile(client, opts.declared)).filter(
      (a) => !opts.partitionsOnly || a.kind === 'create-partition' || a.kind === 'retire-partition',
    );
    const steps: ReconcileStep[] = [];
    for (const a of actions) {
      if (opts.dryRun) {
        steps.push({ action: describeAction(a), status: 'skipped', detail: 'dry run' });
        continue;
      }
      try {
        steps.push({ action: describeAction(a), status: 'done', detail: await run(client, a) });
      } catch (err) {
        steps.push({ action: describeAction(a), status: 'failed', detail: describeError(err) });
      }
    }
    return steps;
  });
}
