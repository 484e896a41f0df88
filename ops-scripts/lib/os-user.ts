// Which OS user owns and runs the servers: PostgreSQL refuses to run as root,
// so as root that is the unprivileged `postgres` user; otherwise the invoking user.
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { badInput } from './errors.ts';
import type { OsUser } from './run.ts';
import { settingsFromEnv } from './settings.ts';

export const isRoot = () => process.getuid?.() === 0;

export function lookupUser(name: string): OsUser | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [user, , uid, gid, , home] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) {
      return { name, uid: Number(uid), gid: Number(gid), home: home || '/' };
    }
  }
  return undefined;
}

export function userByUid(uid: number): OsUser | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [name, , u, gid, , home] = line.split(':');
    if (name && Number(u) === uid && gid !== undefined) return { name, uid, gid: Number(gid), home: home || '/' };
  }
  return undefined;
}

/** The user the cluster and Redis run as; `undefined` means "this process's own user". */
export function serviceUser(): OsUser | undefined {
  if (!isRoot()) return undefined;
  const name = settingsFromEnv().host.serviceUser;
  const user = lookupUser(name);
  if (!user) {
    throw badInput(
      `running as root, but the OS user "${name}" to run PostgreSQL as does not exist`,
      'create it (useradd --system postgres) or set EDUPULSE_SERVICE_USER to an unprivileged user',
    );
  }
  return user;
}

export function currentUserName(): string {
  return userInfo().username;
}
