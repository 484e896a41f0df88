// Applies a plan: indexes built CONCURRENTLY (a changed or invalid one is
// built under a temporary name, then swapped in), views replaced in one
// transaction each, every statement under lock_timeout. A step that cannot
// get its lock fails naming the table and who holds it, and leaves nothing
// half-made behind (an invalid index it started is dropped).
import { indexes as declaredIndexes, loadViews, type IndexDecl, type ViewDecl } from '../index.ts';
import { withClient, withTransaction, type PgClient, type PgConfig } from '../../ops-scripts/lib/db.ts';
import { describeError, failed, ToolkitError } from '../../ops-scripts/lib/errors.ts';
import type { StepStatus } from '../../ops-scripts/lib/logger.ts';
import { liveIndex, readObjects, viewFingerprint } from './catalog.ts';
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

export const projectDeclarations = (): Declared => ({ indexes: declaredIndexes, views: loadViews() });

export async function planReconcile(client: PgClient, declared: Declared = projectDeclarations()): Promise<Action[]> {
  return plan(declared, await readObjects(client));
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

/** Builds `d` under `name`; on failure drops what the build left (an invalid index) and rethrows. */
async function buildIndex(client: PgClient, d: IndexDecl, name: string): Promise<void> {
  try {
    await client.query(sql.createIndex(d, name));
  } catch (err) {
    if (await liveIndex(client, sql.qualified(d.schema, name)))
      await client.query(sql.dropIndex(d.schema, name)).catch(() => {});
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
      await client.query(sql.dropIndex(a.decl.schema, tmp));
      await buildIndex(client, a.decl, tmp);
      try {
        await client.query(sql.dropIndex(a.decl.schema, a.decl.name));
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
      await client.query(sql.dropIndex(a.schema, a.name));
      return 'dropped concurrently';
    case 'create-view':
    case 'replace-view':
      return putView(client, a.view);
    case 'drop-view':
      await withTransaction(client, () => client.query(sql.dropView(a.schema, a.name)));
      return 'dropped';
    case 'conflict':
      throw new ToolkitError('failed', `${a.object} ${a.reason}`);
  }
}

/** Plans and applies on one connection (as the owner role); every action reports a step. */
export async function reconcile(
  config: PgConfig,
  opts: ReconcileOptions & { declared?: Declared; dryRun?: boolean } = {},
): Promise<ReconcileStep[]> {
  return withClient(config, async (client) => {
    await client.query(`SET lock_timeout = '${(opts.lockTimeout ?? '5s').replace(/'/g, '')}'`);
    const actions = await planReconcile(client, opts.declared);
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
