// Pure SQL builders for roles and privileges: text in, text out, tested by
// exact string. Every identifier goes through quoteIdent.
import type { RoleDecl } from '../declarations.ts';
import { quoteIdent as qi } from '../../ops-scripts/lib/db.ts';
import type { ObjectKind } from './catalog.ts';

/** The full attribute list, so ALTER ROLE also takes back what someone added (SUPERUSER, CREATEROLE...). */
export function roleAttributes(r: RoleDecl): string {
  return [
    r.login ? 'LOGIN' : 'NOLOGIN',
    'NOSUPERUSER',
    'NOCREATEDB',
    'NOCREATEROLE',
    r.inherit ? 'INHERIT' : 'NOINHERIT',
    r.replication ? 'REPLICATION' : 'NOREPLICATION',
    'NOBYPASSRLS',
    `CONNECTION LIMIT ${r.connectionLimit}`,
  ].join(' ');
}

export const createRole = (r: RoleDecl) => `CREATE ROLE ${qi(r.name)} WITH ${roleAttributes(r)}`;
export const alterRole = (r: RoleDecl) => `ALTER ROLE ${qi(r.name)} WITH ${roleAttributes(r)}`;
export const dropRole = (name: string) => `DROP ROLE ${qi(name)}`;
export const dropOwned = (name: string) => `DROP OWNED BY ${qi(name)}`;
createRole.reverse = (r: RoleDecl) => dropRole(r.name);

export const grantMembership = (role: string, member: string) => `GRANT ${qi(role)} TO ${qi(member)}`;
export const revokeMembership = (role: string, member: string) => `REVOKE ${qi(role)} FROM ${qi(member)}`;
grantMembership.reverse = revokeMembership;

export const alterDatabaseOwner = (database: string, owner: string) =>
  `ALTER DATABASE ${qi(database)} OWNER TO ${qi(owner)}`;

const grantee = (role: string) => (role === 'PUBLIC' ? 'PUBLIC' : qi(role));

function objectClause(kind: ObjectKind, schema: string, name: string): string {
  switch (kind) {
    case 'database':
      return `DATABASE ${qi(name)}`;
    case 'schema':
      return `SCHEMA ${qi(name)}`;
    case 'table':
      return `TABLE ${qi(schema)}.${qi(name)}`;
    case 'sequence':
      return `SEQUENCE ${qi(schema)}.${qi(name)}`;
  }
}

export interface PrivilegeTarget {
  kind: ObjectKind;
  schema: string;
  name: string;
  role: string;
  privileges: string[];
}

export const grant = (t: PrivilegeTarget) =>
  `GRANT ${t.privileges.join(', ')} ON ${objectClause(t.kind, t.schema, t.name)} TO ${grantee(t.role)}`;
export const revoke = (t: PrivilegeTarget) =>
  `REVOKE ${t.privileges.join(', ')} ON ${objectClause(t.kind, t.schema, t.name)} FROM ${grantee(t.role)}`;
grant.reverse = revoke;

export interface DefaultPrivilegeTarget {
  owner: string;
  schema: string;
  on: 'table' | 'sequence';
  role: string;
  privileges: string[];
}

const defaultScope = (t: DefaultPrivilegeTarget) =>
  `ALTER DEFAULT PRIVILEGES FOR ROLE ${qi(t.owner)}${t.schema ? ` IN SCHEMA ${qi(t.schema)}` : ''}`;
const defaultObjects = (t: DefaultPrivilegeTarget) => (t.on === 'table' ? 'TABLES' : 'SEQUENCES');

export const grantDefault = (t: DefaultPrivilegeTarget) =>
  `${defaultScope(t)} GRANT ${t.privileges.join(', ')} ON ${defaultObjects(t)} TO ${grantee(t.role)}`;
export const revokeDefault = (t: DefaultPrivilegeTarget) =>
  `${defaultScope(t)} REVOKE ${t.privileges.join(', ')} ON ${defaultObjects(t)} FROM ${grantee(t.role)}`;
grantDefault.reverse = revokeDefault;

export const setPasswordVerifier = (role: string, verifier: string) =>
  `ALTER ROLE ${qi(role)} PASSWORD '${verifier.replace(/'/g, "''")}'`;

/**
 * Run first in a transaction that sets passwords: keeps the statements (which
 * carry a SCRAM verifier, never the password) out of the server log and out
 * of pg_stat_statements, which the monitoring login can read. Turning
 * pg_stat_statements' tracking off needs a superuser; a managed admin that
 * is not one gets the log settings only (the DO block swallows the refusal).
 */
export const UNTRACKED_PASSWORD_STATEMENTS = [
  "SET LOCAL log_statement = 'none'",
  'SET LOCAL log_min_duration_statement = -1',
  `DO $$ BEGIN
  PERFORM set_config('pg_stat_statements.track_utility', 'off', true);
  PERFORM set_config('pg_stat_statements.track', 'none', true);
EXCEPTION WHEN insufficient_privilege OR undefined_object THEN NULL; END $$`,
];
