// Login passwords kept in the local stack's secrets file (0600, rewritten atomically).
import { badInput } from '../errors.ts';
import type { OsUser } from '../run.ts';
import { readSecrets, writeSecrets } from '../secrets.ts';
import type { PasswordStore } from '../../../roles/engine/apply.ts';

export function secretsFileStore(file: string, owner?: OsUser): PasswordStore {
  const load = () => {
    const s = readSecrets(file);
    if (!s) throw badInput(`no secrets file at ${file}`, 'run `npm run up` first');
    return s;
  };
  return {
    get: (role) => load().roles[role],
    save: (passwords) => {
      const s = load();
      writeSecrets(file, { ...s, roles: { ...s.roles, ...passwords } }, owner);
    },
  };
}
