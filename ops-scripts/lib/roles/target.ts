// The connection and password store the roles commands work on: the
// application database as the superuser (DATABASE_URL or the local stack),
// passwords in the local stack's secrets file.
import { connections } from '../connection.ts';
import type { PgConfig } from '../db.ts';
import { serviceUser } from '../os-user.ts';
import { statePaths } from '../state.ts';
import type { PasswordStore } from '../../../roles/engine/apply.ts';
import { secretsFileStore } from './password-store.ts';

export function rolesTarget(env: Readonly<Record<string, string | undefined>> = process.env): {
  pg: PgConfig;
  passwords: PasswordStore;
} {
  return {
    pg: { ...connections(env).pg, application_name: 'edupulse-db roles' },
    passwords: secretsFileStore(statePaths(env).secretsFile, serviceUser()),
  };
}
