// Schema migrations with node-pg-migrate's programmatic runner. They run as
// the migrator login with role=owner set at connection start, so every object
// they create belongs to the owner role; node-pg-migrate takes its advisory
// lock; lock_timeout makes a migration stuck behind a busy table fail fast.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunnerOption } from 'node-pg-migrate';
import { check } from '../../infra/settings.ts';
import { declarations } from '../../roles/declarations.ts';
import { withClient, type PgConfig } from '../../ops-scripts/lib/db.ts';
import { badInput, failed, ToolkitError } from '../../ops-scripts/lib/errors.ts';
import type { Logger } from '../../ops-scripts/lib/logger.ts';

/** Compiled migrations when running compiled (node-pg-migrate then needs no TypeScript loader). */
export const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
/** node-pg-migrate's history table lives outside `public`, where app_user and readonly have no grants. */
export const MIGRATIONS_SCHEMA = 'edupulse_meta';
export const MIGRATIONS_TABLE = 'pgmigrations';
export const DEFAULT_LOCK_TIMEOUT = '5s';

/** The migrator's connection: it becomes the owner role at connection start. */
export function migratorConfig(base: PgConfig, password: string, opts: { lockTimeout?: string } = {}): PgConfig {
  if (!/^[a-z_][a-z0-9_]*$/.test(declarations.owner))
    throw badInput(`owner role name "${declarations.owner}" must be a plain identifier`);
  // An input (the settings' migrations.lockTimeout), never read from the environment here: the Pulumi provider runs this too.
  const lockTimeout = opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT;
  // The one shape of a PostgreSQL timeout (infra/settings.ts check.timeout): with its unit, on, within the limit.
  try {
    check.timeout(lockTimeout);
  } catch (err) {
    throw badInput(`lock timeout ${(err as Error).message}`, 'use for example 5s or 500ms');
  }
  return {
    ...base,
    user: declarations.migrator,
    password,
    application_name: 'edupulse-db migrate',
    options: `-c role=${declarations.owner} -c lock_timeout=${lockTimeout}`,
  };
}

export interface MigrationRun {
  name: string;
  direction: 'up' | 'down';
  /** With dryRun: the SQL node-pg-migrate would run for it (nothing is run). */
  sql?: string;
}

/** The migration files, in order (node-pg-migrate's names: file name without extension). */
export function migrationNames(dir = MIGRATIONS_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => /^\d+_.+\.[jt]s$/.test(f) && !f.endsWith('.d.ts'))
    .map((f) => f.replace(/\.[jt]s$/, ''))
    .sort();
}

export async function appliedMigrations(config: PgConfig): Promise<string[]> {
  return withClient(config, async (c) => {
    const exists = await c.query('SELECT to_regclass($1) AS t', [`${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE}`]);
    if (!exists.rows[0].t) return [];
    const { rows } = await c.query<{ name: string }>(
      `SELECT name FROM ${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE} ORDER BY run_on, id`,
    );
    return rows.map((r) => r.name);
  });
}

export async function migrate(
  config: PgConfig,
  opts: {
    direction: 'up' | 'down';
    count?: number;
    dir?: string;
    logger?: Logger;
    dryRun?: boolean;
  },
): Promise<MigrationRun[]> {
  let lastStatement = '';
  // node-pg-migrate names each migration (info) and then passes its SQL to the debug logger, dry run or not.
  const sql = new Map<string, string>();
  let current = '';
  const options: RunnerOption = {
    databaseUrl: config,
    dir: opts.dir ?? MIGRATIONS_DIR,
    migrationsTable: MIGRATIONS_TABLE,
    migrationsSchema: MIGRATIONS_SCHEMA,
    createMigrationsSchema: true,
    direction: opts.direction,
    count: opts.count ?? (opts.direction === 'up' ? Infinity : 1),
    checkOrder: true,
    singleTransaction: true,
    dryRun: opts.dryRun ?? false,
    ignorePattern: '(\\..*)|(.*\\.d\\.ts)',
    // Without verbose node-pg-migrate drops the debug logger, which is where each migration's SQL goes.
    verbose: true,
    logger: {
      debug: (m: string) => {
        if (current) sql.set(current, `${sql.get(current) ?? ''}${m}`);
      },
      info: (m: string) => {
        const name = /^### MIGRATION (\S+) \((UP|DOWN)\) ###$/.exec(m)?.[1];
        if (name) current = name;
      },
      warn: (m: string) =>
        opts.logger?.log({
          event: 'warn',
          // node-pg-migrate's words for a migration that asked to run outside a transaction (an online conversion).
          message: /Need to break single transaction|not wrapped in a transaction/.test(m)
            ? `${current || 'a migration'} runs its steps outside one transaction, each its own (the migrations before it are committed first)`
            : m,
        }),
      error: (m: string) => {
        lastStatement = m;
      },
    },
  };
  try {
    // Loaded here, not at the top: only jobs that migrate pay for it.
    const { runner } = await import('node-pg-migrate');
    const ran = await runner(options);
    return ran.map((m) => ({
      name: m.name,
      direction: opts.direction,
      ...(opts.dryRun ? { sql: (sql.get(m.name) ?? '').trim() } : {}),
    }));
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === '55P03') {
      throw failed(
        `a migration waited longer than lock_timeout for a lock and was rolled back (SQLSTATE 55P03): another session holds a lock on the table it alters\n${lastStatement}`,
        'find the blocker with: SELECT pid, state, query FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(<pid>)) or look for long transactions; run again when it ends',
      );
    }
    if (err instanceof ToolkitError) throw err;
    if (/Another migration is already running/i.test((err as Error).message ?? '')) {
      throw new ToolkitError(
        'refused',
        "another migration run holds node-pg-migrate's advisory lock",
        'wait for it to finish, then run again',
      );
    }
    throw failed(
      `migration ${opts.direction} failed: ${(err as Error).message}${code ? ` (SQLSTATE ${code})` : ''}${lastStatement ? `\n${lastStatement}` : ''}`,
      undefined,
      err,
    );
  }
}
