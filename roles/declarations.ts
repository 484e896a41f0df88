// Roles, memberships, grants and default privileges: declared once, as data.
// The local stack applies and audits them (ops-scripts/lib/roles/), the
// Pulumi program maps them to @pulumi/postgresql resources, and the recovery
// drill audits a restored cluster against them.

export type DatabasePrivilege = 'CONNECT' | 'CREATE' | 'TEMPORARY';
export type SchemaPrivilege = 'USAGE' | 'CREATE';
export type TablePrivilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE' | 'REFERENCES' | 'TRIGGER';
export type SequencePrivilege = 'USAGE' | 'SELECT' | 'UPDATE';

export interface RoleDecl {
  name: string;
  login: boolean;
  /** Members of a NOINHERIT role must SET ROLE to use what it is granted. */
  inherit: boolean;
  replication?: boolean;
  /** -1: no limit. */
  connectionLimit: number;
  /** Roles this role is a member of, ours or predefined (pg_monitor, pg_read_all_data). */
  memberOf: string[];
  purpose: string;
}

/** Every managed role is NOSUPERUSER, NOCREATEDB, NOCREATEROLE, NOBYPASSRLS: not declarable. */
export type Grant =
  | { role: string; on: 'database'; privileges: DatabasePrivilege[] }
  | { role: string; on: 'schema'; schema: string; privileges: SchemaPrivilege[] }
  /** All tables, views and materialized views of the schema. */
  | { role: string; on: 'table'; schema: string; privileges: TablePrivilege[] }
  | { role: string; on: 'sequence'; schema: string; privileges: SequencePrivilege[] };

/** ALTER DEFAULT PRIVILEGES FOR ROLE owner IN SCHEMA schema: objects made later are covered. */
export type DefaultPrivilege =
  | { owner: string; role: string; schema: string; on: 'table'; privileges: TablePrivilege[] }
  | { owner: string; role: string; schema: string; on: 'sequence'; privileges: SequencePrivilege[] };

export interface RoleDeclarations {
  /** Owns the database, so the schema objects (and `public`, through pg_database_owner). */
  owner: string;
  /** The login migrations run as; it SETs ROLE to the owner. */
  migrator: string;
  /** The login backups run as (REPLICATION, pg_read_all_data). */
  backup: string;
  /** The login health checks and metrics run as (pg_monitor). */
  monitor: string;
  /** The read-only login reports (and the health check's latency probe) run as. */
  reporting: string;
  /** The login standbys stream WAL as (REPLICATION only: no data privileges). */
  replicator: string;
  /**
   * The login PgBouncer looks client secrets up as (auth_user): it may only run the lookup function
   * (pgbouncer.get_auth, SECURITY DEFINER), and logs in by peer authentication on the local socket.
   */
  pooler: string;
  roles: RoleDecl[];
  grants: Grant[];
  defaultPrivileges: DefaultPrivilege[];
  /** What PUBLIC keeps: nothing on the database, nothing on schema public. */
  publicDatabasePrivileges: DatabasePrivilege[];
  publicSchemaPrivileges: Record<string, SchemaPrivilege[]>;
}

const OWNER = 'edupulse_owner';
const SCHEMA = 'public';
const APP_TABLE: TablePrivilege[] = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];
const APP_SEQUENCE: SequencePrivilege[] = ['USAGE', 'SELECT'];

export const declarations: RoleDeclarations = {
  owner: OWNER,
  migrator: 'edupulse_migrator',
  backup: 'edupulse_backup',
  monitor: 'edupulse_monitor',
  reporting: 'reporting',
  replicator: 'edupulse_replicator',
  pooler: 'edupulse_pooler',
  roles: [
    { name: OWNER, login: false, inherit: true, connectionLimit: -1, memberOf: [], purpose: 'owns the schema objects' },
    {
      name: 'edupulse_migrator',
      login: true,
      inherit: false,
      connectionLimit: 5,
      memberOf: [OWNER],
      purpose: 'runs migrations (SET ROLE edupulse_owner)',
    },
    {
      name: 'app_user',
      login: true,
      inherit: true,
      connectionLimit: 50,
      memberOf: [],
      purpose: 'the application: reads and writes rows, no DDL',
    },
    {
      name: 'readonly',
      login: false,
      inherit: true,
      connectionLimit: -1,
      memberOf: [],
      purpose: 'group: SELECT on tables and views',
    },
    {
      name: 'reporting',
      login: true,
      inherit: true,
      connectionLimit: 10,
      memberOf: ['readonly'],
      purpose: 'reporting login in the readonly group',
    },
    {
      name: 'edupulse_backup',
      login: true,
      inherit: true,
      replication: true,
      connectionLimit: 5,
      memberOf: ['pg_read_all_data'],
      purpose: 'pg_basebackup and pg_dump',
    },
    {
      name: 'edupulse_monitor',
      login: true,
      inherit: true,
      connectionLimit: 5,
      memberOf: ['pg_monitor'],
      purpose: 'health checks and metrics',
    },
    {
      name: 'edupulse_replicator',
      login: true,
      inherit: false,
      replication: true,
      connectionLimit: 5,
      memberOf: [],
      purpose: 'streaming replication for the standbys (no data privileges)',
    },
    {
      name: 'edupulse_pooler',
      login: true,
      inherit: false,
      connectionLimit: 5,
      memberOf: [],
      purpose: "PgBouncer's auth_query (runs pgbouncer.get_auth only)",
    },
  ],
  grants: [
    ...['edupulse_migrator', 'app_user', 'readonly', 'edupulse_backup', 'edupulse_monitor'].map((role) => ({
      role,
      on: 'database' as const,
      privileges: ['CONNECT' as const],
    })),
    { role: 'edupulse_pooler', on: 'database', privileges: ['CONNECT'] },
    // The schema of the lookup function (made by the desired state's pooler step, owned by the superuser).
    { role: 'edupulse_pooler', on: 'schema', schema: 'pgbouncer', privileges: ['USAGE'] },
    { role: 'app_user', on: 'schema', schema: SCHEMA, privileges: ['USAGE'] },
    { role: 'readonly', on: 'schema', schema: SCHEMA, privileges: ['USAGE'] },
    { role: 'app_user', on: 'table', schema: SCHEMA, privileges: APP_TABLE },
    { role: 'readonly', on: 'table', schema: SCHEMA, privileges: ['SELECT'] },
    { role: 'app_user', on: 'sequence', schema: SCHEMA, privileges: APP_SEQUENCE },
  ],
  defaultPrivileges: [
    { owner: OWNER, role: 'app_user', schema: SCHEMA, on: 'table', privileges: APP_TABLE },
    { owner: OWNER, role: 'readonly', schema: SCHEMA, on: 'table', privileges: ['SELECT'] },
    { owner: OWNER, role: 'app_user', schema: SCHEMA, on: 'sequence', privileges: APP_SEQUENCE },
  ],
  publicDatabasePrivileges: [],
  publicSchemaPrivileges: { [SCHEMA]: [] },
};

export const loginRoles = (d: RoleDeclarations = declarations) => d.roles.filter((r) => r.login).map((r) => r.name);
