// The migrator's connection for the migrate commands and node-pg-migrate's
// own CLI: the target database (DATABASE_URL or the local stack), the
// migrator login and its password from the secrets file.
import { declarations } from '../../roles/declarations.ts';
import { connections } from './connection.ts';
import type { PgConfig } from './db.ts';
import { badInput } from './errors.ts';
import { migratorConfig } from '../../migrations/engine/migrate.ts';
import { readSecrets } from './secrets.ts';
import { settingsFromEnv } from './settings.ts';
import { statePaths } from './state.ts';

export function migratorTarget(env: Readonly<Record<string, string | undefined>> = process.env): PgConfig {
  const file = statePaths(env).secretsFile;
  const password = readSecrets(file)?.roles[declarations.migrator];
  if (!password)
    throw badInput(`no password for ${declarations.migrator} in ${file}`, 'run `npm run up` (or roles:apply) first');
  return migratorConfig(connections(env).pg, password, { lockTimeout: settingsFromEnv(env).migrations.lockTimeout });
}
