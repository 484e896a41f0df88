// Applies the desired state that lives in the database: the application
// database, then (as their modules arrive) roles, migrations, indexes and
// views. The local stack calls it from `up`; each part is idempotent and
// reports a step.
import { withClient, quoteIdent, type PgConfig } from './db.ts';
import type { Logger, StepStatus } from './logger.ts';

export interface DesiredStateStep {
  name: string;
  status: StepStatus;
  detail?: string;
}

export interface DesiredStateTarget {
  /** The superuser's connection to the maintenance database `postgres`. */
  admin: PgConfig;
  database: string;
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

export async function applyDesiredState(target: DesiredStateTarget): Promise<DesiredStateStep[]> {
  return [await ensureDatabase(target.admin, target.database)];
}
