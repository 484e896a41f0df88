// Reads what the live catalog says about the managed roles: attributes,
// memberships, direct grants (aclexplode of the ACLs, so ownership and
// inheritance do not blur the picture) and default privileges.
import type { PgClient } from '../../ops-scripts/lib/db.ts';

export interface RoleRow {
  name: string;
  superuser: boolean;
  inherit: boolean;
  createrole: boolean;
  createdb: boolean;
  login: boolean;
  replication: boolean;
  bypassrls: boolean;
  connlimit: number;
}

export type ObjectKind = 'database' | 'schema' | 'table' | 'sequence';

/** One direct grant to a managed role or PUBLIC (never the object's owner). */
export interface AclEntry {
  kind: ObjectKind;
  schema: string;
  name: string;
  grantee: string;
  privilege: string;
}

export interface DefaultAclEntry {
  owner: string;
  schema: string;
  on: 'table' | 'sequence';
  grantee: string;
  privilege: string;
}

export interface Relation {
  schema: string;
  name: string;
  kind: 'table' | 'sequence';
}

export interface CatalogSnapshot {
  database: string;
  databaseOwner: string;
  schemas: string[];
  roles: RoleRow[];
  memberships: Array<{ member: string; role: string }>;
  relations: Relation[];
  acl: AclEntry[];
  defaultAcl: DefaultAclEntry[];
  /**
   * Roles nobody declared that can log in, or hold a privilege on this
   * database or its objects (the bootstrap superuser, the session's own login
   * and PostgreSQL's predefined roles aside).
   */
  undeclared: Array<{ name: string; login: boolean; privileges: number }>;
}

const USER_SCHEMA = `n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'`;

export async function readCatalog(client: PgClient, managed: string[]): Promise<CatalogSnapshot> {
  const q = async <T>(sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows as T[];
  const [db] = await q<{ database: string; owner: string }>(
    `SELECT d.datname AS database, pg_get_userbyid(d.datdba) AS owner FROM pg_database d WHERE d.datname = current_database()`,
  );
  const schemas = (
    await q<{ name: string }>(`SELECT n.nspname AS name FROM pg_namespace n WHERE ${USER_SCHEMA} ORDER BY 1`)
  ).map((r) => r.name);
  const roles = await q<RoleRow>(
    `SELECT rolname AS name, rolsuper AS superuser, rolinherit AS inherit, rolcreaterole AS createrole,
            rolcreatedb AS createdb, rolcanlogin AS login, rolreplication AS replication,
            rolbypassrls AS bypassrls, rolconnlimit AS connlimit
       FROM pg_roles WHERE rolname = ANY($1) ORDER BY rolname`,
    [managed],
  );
  const memberships = await q<{ member: string; role: string }>(
    `SELECT m.rolname AS member, r.rolname AS role FROM pg_auth_members am
       JOIN pg_roles m ON m.oid = am.member JOIN pg_roles r ON r.oid = am.roleid
      WHERE m.rolname = ANY($1) ORDER BY 1, 2`,
    [managed],
  );
  const relations = await q<Relation>(
    `SELECT n.nspname AS schema, c.relname AS name, CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END AS kind
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND ${USER_SCHEMA} ORDER BY 1, 2`,
  );
  // Grantee 0 is PUBLIC. Entries for the object's owner are its ownership, not grants.
  const grantee = `CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END`;
  const ours = `(a.grantee = 0 OR pg_get_userbyid(a.grantee) = ANY($1))`;
  const acl = await q<AclEntry>(
    `SELECT 'database' AS kind, '' AS schema, d.datname AS name, ${grantee} AS grantee, a.privilege_type AS privilege
       FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
      WHERE d.datname = current_database() AND a.grantee <> d.datdba AND ${ours}
     UNION ALL
     SELECT 'schema', n.nspname, n.nspname, ${grantee}, a.privilege_type
       FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
      WHERE ${USER_SCHEMA} AND a.grantee <> n.nspowner AND ${ours}
     UNION ALL
     SELECT CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END, n.nspname, c.relname, ${grantee}, a.privilege_type
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
            aclexplode(coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND ${USER_SCHEMA} AND a.grantee <> c.relowner AND ${ours}
     ORDER BY 1, 2, 3, 4, 5`,
    [managed],
  );
  const defaultAcl = await q<DefaultAclEntry>(
    `SELECT pg_get_userbyid(d.defaclrole) AS owner, coalesce(n.nspname, '') AS schema,
            CASE d.defaclobjtype WHEN 'S' THEN 'sequence' ELSE 'table' END AS on,
            ${grantee} AS grantee, a.privilege_type AS privilege
       FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a
      WHERE d.defaclobjtype IN ('r', 'S') AND ${ours} AND a.grantee <> d.defaclrole
      ORDER BY 1, 2, 3, 4, 5`,
    [managed],
  );
  const undeclared = await q<{ name: string; login: boolean; privileges: number }>(
    `WITH grants AS (
       SELECT a.grantee FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = current_database()
       UNION ALL SELECT a.grantee FROM pg_namespace n, aclexplode(n.nspacl) a WHERE ${USER_SCHEMA}
       UNION ALL SELECT a.grantee FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a WHERE ${USER_SCHEMA})
     SELECT r.rolname AS name, r.rolcanlogin AS login, (SELECT count(*)::int FROM grants g WHERE g.grantee = r.oid) AS privileges
       FROM pg_roles r
      WHERE r.oid <> 10 AND r.rolname <> session_user AND r.rolname NOT LIKE 'pg\\_%' AND NOT r.rolname = ANY($1)
        AND (r.rolcanlogin OR EXISTS (SELECT 1 FROM grants g WHERE g.grantee = r.oid))
      ORDER BY 1`,
    [managed],
  );
  return {
    database: db!.database,
    databaseOwner: db!.owner,
    schemas,
    roles,
    memberships,
    relations,
    acl,
    defaultAcl,
    undeclared,
  };
}
