// Generated passwords of the local stack, in one file readable by its owner
// only. Never printed, never on a command line.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { failed } from './errors.ts';
import { writeFileAtomic } from './files.ts';
import type { OsUser } from './run.ts';

export interface Secrets {
  postgres: { superuser: string; password: string };
  redis: { password: string };
  /** Login roles' passwords, by role name. */
  roles: Record<string, string>;
}

export const SUPERUSER = 'postgres';

export const generatePassword = () => randomBytes(24).toString('base64url');

export function readSecrets(file: string): Secrets | undefined {
  if (!existsSync(file)) return undefined;
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) {
    throw failed(`${file} is readable by others (mode ${mode.toString(8)})`, `chmod 600 ${file}`);
  }
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<Secrets>;
  if (!parsed.postgres?.password || !parsed.redis?.password) {
    throw failed(
      `${file} is missing the postgres or redis password`,
      'restore it from a backup, or remove the state directory and run up again',
    );
  }
  return { postgres: parsed.postgres, redis: parsed.redis, roles: parsed.roles ?? {} };
}

export function writeSecrets(file: string, secrets: Secrets, owner?: OsUser): void {
  writeFileAtomic(file, JSON.stringify(secrets, null, 2) + '\n', { mode: 0o600, owner });
}

/** The existing secrets, or new ones written to `file`. */
export function loadOrCreateSecrets(file: string, owner?: OsUser): { secrets: Secrets; created: boolean } {
  const existing = readSecrets(file);
  if (existing) return { secrets: existing, created: false };
  const secrets: Secrets = {
    postgres: { superuser: SUPERUSER, password: generatePassword() },
    redis: { password: generatePassword() },
    roles: {},
  };
  writeSecrets(file, secrets, owner);
  return { secrets, created: true };
}
