// Applies the desired state that lives in the database, in order: the
// application database, roles and grants, then (as their modules arrive)
// migrations, indexes and views. The local stack calls it from `up`; each
// part is idempotent and reports a step.
import { withClient, quoteIdent, type PgConfig } from './db.ts';
import type { Logger, StepStatus } from './logger.ts';
import { applyRoles, type PasswordStore } from '../../roles/engine/index.ts';
import { declarations } from '../../roles/declarations.ts';
import { failed } from './errors.ts';
import { migrate, migratorConfig } from '../../migrations/engine/migrate.ts';
import { reconcile } from '../../views/engine/index.ts';
import { ensurePoolerAuth, POOLER_SCHEMA } from '../../infra/pgbouncer.ts';

export interface DesiredStateStep {
  name: string;
  status: StepStatus;
  detail?: string;
}

export interface DesiredStateTarget {
  /** The superuser's connection to a database of the cluster. */
  connect(database: string): PgConfig;
  database: string;
  passwords: PasswordStore;
  /** lock_timeout for migrations and index/view changes (settings.migrations.lockTimeout). */
  lockTimeout: string;
  logger: Logger;
}

export async function ensureDatabase(admin: PgConfig, database: string): Promise<DesiredStateStep> {
  return withClient(admin, async (c) => {
    const { rowCount } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (rowCount) return { name: `database ${database}`, status: 'skipped', detail: 'exists' };
    await c.query(`CREATE DATABASE ${quoteIdent(database)}`);
    return { name: `database ${database}`, status: 'done', detail: 'created' };
  });
}

export async function rolesStep(target: DesiredStateTarget): Promise<DesiredStateStep> {
  const r = await withClient(target.connect(target.database), (c) => applyRoles(c, target.passwords));
  return r.statements.length
    ? {
        name: 'roles and grants',
        status: 'done',
        detail: `${r.statements.length} statements${r.passwordsSet.length ? `; passwords set for ${r.passwordsSet.join(', ')}` : ''}`,
      }
    : { name: 'roles and grants', status: 'skipped', detail: 'as declared' };
}

export async function migrationsStep(target: DesiredStateTarget): Promise<DesiredStateStep> {
  const ran = await migrate(ownerConfig(target), { direction: 'up', logger: target.logger });
  return ran.length
    ? { name: 'migrations', status: 'done', detail: `applied ${ran.map((m) => m.name).join(', ')}` }
    : { name: 'migrations', status: 'skipped', detail: 'none pending' };
}

function ownerConfig(target: DesiredStateTarget): PgConfig {
  const password = target.passwords.get(declarations.migrator);
  if (!password) throw failed(`no password for ${declarations.migrator} in the secrets file`, 'run roles:apply first');
  return migratorConfig(target.connect(target.database), password, { lockTimeout: target.lockTimeout });
}

export async function objectsStep(target: DesiredStateTarget): Promise<DesiredStateStep> {
  const steps = await reconcile(ownerConfig(target));
  const bad = steps.filter((s) => s.status === 'failed');
  if (bad.length) {
    throw failed(
      `indexes and views: ${bad.length} of ${steps.length} steps failed:\n${bad.map((s) => `  ${s.action}: ${s.detail}`).join('\n')}`,
      'see `npm run plan`, fix the cause, then run up (or apply) again',
    );
  }
  return steps.length
    ? { name: 'indexes and views', status: 'done', detail: steps.map((s) => s.action).join('; ') }
    : { name: 'indexes and views', status: 'skipped', detail: 'as declared' };
}

/** pg_stat_statements' view lives in the maintenance database, so no extension objects land in the application's schema. */
export async function statStatementsStep(target: DesiredStateTarget): Promise<DesiredStateStep> {
  return withClient(target.connect('postgres'), async (c) => {
    const { rowCount } = await c.query("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'");
    if (rowCount) return { name: 'pg_stat_statements', status: 'skipped', detail: 'installed in postgres' };
    await c.query('CREATE EXTENSION pg_stat_statements');
    return { name: 'pg_stat_statements', status: 'done', detail: 'installed in postgres' };
  });
}

export async function poolerAuthStep(target: DesiredStateTarget): Promise<DesiredStateStep> {
  return withClient(target.connect(target.database), async (c) => {
    if (!(await ensurePoolerAuth(c))) return { name: 'pooler auth function', status: 'skipped', detail: 'as declared' };
    return {
      name: 'pooler auth function',
      status: 'done',
      detail: `${POOLER_SCHEMA}.get_auth for ${declarations.pooler}`,
    };
  });
}

export async function applyDesiredState(target: DesiredStateTarget): Promise<DesiredStateStep[]> {
  const steps = [await ensureDatabase(target.connect('postgres'), target.database), await statStatementsStep(target)];
  steps.push(await rolesStep(target));
  steps.push(await migrationsStep(target));
  steps.push(await objectsStep(target));
  steps.push(await poolerAuthStep(target));
  return steps;
}
