// Applies the desired state that lives in the database, in order: the
// application database, roles and grants, then (as their modules arrive)
// migrations, indexes and views. The local stack calls it from `up`; each
// part is idempotent and reports a step.
import { withClient, quoteIdent, type PgConfig } from './db.ts';
import type { Logger, StepStatus } from './logger.ts';
import { applyRoles, type PasswordStore } from './roles/index.ts';
import { declarations } from '../../roles/declarations.ts';
import { failed } from './errors.ts';
import { migrate, migratorConfig } from './migrate.ts';

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
    ? { name: 'roles and grants', status: 'done', detail: `${r.statements.length} statements${r.passwordsSet.length ? `; passwords set for ${r.passwordsSet.join(', ')}` : ''}` }
    : { name: 'roles and grants', status: 'skipped', detail: 'as declared' };
}

export async function migrationsStep(target: DesiredStateTarget): Promise<DesiredStateStep> {
  const password = target.passwords.get(declarations.migrator);
  if (!password) throw failed(`no password for ${declarations.migrator} in the secrets file`, 'run roles:apply first');
  const ran = await migrate(migratorConfig(target.connect(target.database), password), { direction: 'up', logger: target.logger });
  return ran.length
    ? { name: 'migrations', status: 'done', detail: `applied ${ran.map((m) => m.name).join(', ')}` }
    : { name: 'migrations', status: 'skipped', detail: 'none pending' };
}

export async function applyDesiredState(target: DesiredStateTarget): Promise<DesiredStateStep[]> {
  const steps = [await ensureDatabase(target.connect('postgres'), target.database)];
  steps.push(await rolesStep(target));
  steps.push(await migrationsStep(target));
  return steps;
}
