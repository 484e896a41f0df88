// What the backup jobs work with: the repository, the client binaries, the
// backup login (REPLICATION + pg_read_all_data) and the superuser connection,
// the OS user that owns the repository, settings and the metrics directory.
import type { Settings } from '../../../infra/settings.ts';
import type { PgBinaries } from '../binaries.ts';
import { connections } from '../connection.ts';
import type { PgConfig } from '../db.ts';
import { badInput } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { OsUser } from '../run.ts';
import { readSecrets } from '../secrets.ts';
import type { StackContext } from '../stack-context.ts';
import { LocalRepository } from './repository.ts';
import { declarations } from '../../../roles/declarations.ts';

/** The backup login: its slot in the role declarations. */
export const BACKUP_ROLE = declarations.backup;

export interface BackupContext {
  repo: LocalRepository;
  pg: PgBinaries;
  backupLogin: PgConfig;
  admin: PgConfig;
  as: OsUser | undefined;
  settings: Settings;
  metricsDir: string;
  logger: Logger;
}

export function backupContext(
  stack: StackContext,
  env: Readonly<Record<string, string | undefined>> = process.env,
): BackupContext {
  const admin = connections(env).pg;
  const password = readSecrets(stack.paths.secretsFile)?.roles[BACKUP_ROLE];
  if (!password)
    throw badInput(
      `no password for ${BACKUP_ROLE} in ${stack.paths.secretsFile}`,
      'run `npm run up` (or roles:apply) first',
    );
  return {
    repo: new LocalRepository(stack.paths.repoDir, stack.as),
    pg: stack.pg,
    backupLogin: { ...admin, user: BACKUP_ROLE, password, application_name: 'edupulse-db backup' },
    admin: { ...admin, application_name: 'edupulse-db backup' },
    as: stack.as,
    settings: stack.settings,
    metricsDir: stack.paths.metricsDir,
    logger: stack.logger,
  };
}
