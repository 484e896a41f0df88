// Audit and apply: one diff (diff.ts) read from the live catalog. Apply runs
// the fixes in one transaction, sets login passwords from the password store
// as SCRAM verifiers (the plaintext never leaves this process), then audits
// again: it ends clean or fails.
import { declarations as projectDeclarations, loginRoles, type RoleDeclarations } from '../declarations.ts';
import { withTransaction, type PgClient } from '../../ops-scripts/lib/db.ts';
import { badInput, failed } from '../../ops-scripts/lib/errors.ts';
import { generatePassword } from '../../ops-scripts/lib/secrets.ts';
import { readCatalog } from './catalog.ts';
import { diffRoles, managedRoleNames, type Difference } from './diff.ts';
import { scramVerifier, verifierMatches } from './scram.ts';
import { setPasswordVerifier, UNTRACKED_PASSWORD_STATEMENTS } from './sql.ts';

/** Where login passwords live: the local stack's secrets file, or a test's map. */
export interface PasswordStore {
  get(role: string): string | undefined;
  /** Persists new passwords (atomically) before they are set on the server. */
  save(passwords: Record<string, string>): void;
}

export async function auditRoles(client: PgClient, d: RoleDeclarations = projectDeclarations): Promise<Difference[]> {
  return diffRoles(d, await readCatalog(client, managedRoleNames(d)));
}

export interface ApplyRolesResult {
  /** Statements run, in order (password statements shown without the verifier). */
  statements: string[];
  passwordsSet: string[];
}

async function storedVerifiers(client: PgClient, roles: string[]): Promise<Map<string, string | null>> {
  const { rows } = await client.query<{ name: string; verifier: string | null }>(
    'SELECT rolname AS name, rolpassword AS verifier FROM pg_authid WHERE rolname = ANY($1)',
    [roles],
  );
  return new Map(rows.map((r) => [r.name, r.verifier]));
}

export interface ApplyRolesOptions {
  /** Also drop roles nobody declared (destructive: their objects in this database go with them). */
  dropUndeclared?: boolean;
}

/** The differences apply acts on: all but dropping undeclared roles, unless asked. */
export const applicable = (diffs: Difference[], opts: ApplyRolesOptions = {}) =>
  diffs.filter((x) => !x.destructive || opts.dropUndeclared);

export async function applyRoles(
  client: PgClient,
  passwords: PasswordStore,
  d: RoleDeclarations = projectDeclarations,
  opts: ApplyRolesOptions = {},
): Promise<ApplyRolesResult> {
  const fixes = [...new Set(applicable(await auditRoles(client, d), opts).map((x) => x.fix))];
  const logins = loginRoles(d);
  const fresh: Record<string, string> = {};
  for (const role of logins) if (!passwords.get(role)) fresh[role] = generatePassword();
  if (Object.keys(fresh).length) passwords.save(fresh);

  const result: ApplyRolesResult = { statements: [], passwordsSet: [] };
  await withTransaction(client, async () => {
    // Keep the password statements out of the server log whatever its settings.
    await client.query("SET LOCAL lock_timeout = '10s'");
    for (const s of UNTRACKED_PASSWORD_STATEMENTS) await client.query(s);
    for (const statement of fixes) {
      await client.query(statement);
      result.statements.push(statement);
    }
    const stored = await storedVerifiers(client, logins);
    for (const role of logins) {
      const password = passwords.get(role)!;
      if (verifierMatches(stored.get(role) ?? null, password)) continue;
      await client.query(setPasswordVerifier(role, scramVerifier(password)));
      result.statements.push(`${setPasswordVerifier(role, '<scram verifier>')}`);
      result.passwordsSet.push(role);
    }
  });
  const left = applicable(await auditRoles(client, d), opts);
  if (left.length) {
    throw failed(
      `roles still differ from the declarations after apply:\n${left.map((x) => `  ${x.role}: ${x.what}`).join('\n')}`,
    );
  }
  return result;
}

/** A new password for one login role: stored first, then set; the old one stops working. */
export async function rotatePassword(
  client: PgClient,
  passwords: PasswordStore,
  role: string,
  d: RoleDeclarations = projectDeclarations,
): Promise<void> {
  const logins = loginRoles(d);
  if (!logins.includes(role)) {
    throw badInput(`"${role}" is not a declared login role`, `rotate one of: ${logins.join(', ')}`);
  }
  const password = generatePassword();
  await withTransaction(client, async () => {
    for (const s of UNTRACKED_PASSWORD_STATEMENTS) await client.query(s);
    await client.query(setPasswordVerifier(role, scramVerifier(password)));
    // Saved inside the transaction: if the save fails, the server keeps the old password.
    passwords.save({ [role]: password });
  });
}
