// PgBouncer's configuration, rendered once for both appliers from the pooler
// settings (infra/settings.ts): the local stack writes it under
// <state>/pooler/, the Pulumi program uploads it into the PgBouncer
// container. Clients authenticate with their own SCRAM secrets, looked up
// with auth_query through pgbouncer.get_auth (a SECURITY DEFINER function,
// ops-scripts/lib/desired-state.ts) as the pooler login, which logs in by peer
// authentication on the server's socket: no password is written for it, and
// no userlist holds one.
import { declarations } from '../roles/declarations.ts';
import type { PoolerSettings } from './settings.ts';

export interface PgbouncerWhere {
  /** [databases] entries: name -> libpq-style connect string. */
  databases: Record<string, string>;
  listenAddr: string;
  port: number;
  /** The admin console's socket directory ('' for none). */
  unixSocketDir: string;
  hbaFile: string;
  authFile: string;
  /** The OS user the admin console is for (peer on the socket). */
  adminUser: string;
  pidfile?: string;
  logfile?: string;
}

/** The lookup function's schema: the one roles/declarations.ts grants the pooler's login USAGE on. */
export const POOLER_SCHEMA = (() => {
  const g = declarations.grants.find((x) => x.role === declarations.pooler && x.on === 'schema');
  if (!g || !('schema' in g)) throw new Error(`roles/declarations.ts grants ${declarations.pooler} no schema`);
  return g.schema;
})();

/** Marks the function's current definition: a different comment means it is applied again. */
export const POOLER_AUTH_MARK = 'edupulse-db pooler auth v1';

/**
 * PgBouncer's auth_query target: a SECURITY DEFINER function of the superuser returning the SCRAM secret of
 * an ordinary login (never a superuser's or a replication login's), executable only by the pooler's login.
 * PgBouncer verifies clients against that secret and logs in to the server with the client's own SCRAM
 * proof, so no password is written anywhere for it.
 */
const POOLER_AUTH_SQL = `CREATE SCHEMA IF NOT EXISTS ${POOLER_SCHEMA};
REVOKE ALL ON SCHEMA ${POOLER_SCHEMA} FROM PUBLIC;
GRANT USAGE ON SCHEMA ${POOLER_SCHEMA} TO ${declarations.pooler};
CREATE OR REPLACE FUNCTION ${POOLER_SCHEMA}.get_auth(p_usename text, OUT usename name, OUT passwd text)
  RETURNS SETOF record LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS
$$ SELECT rolname, rolpassword FROM pg_authid
   WHERE rolname = p_usename AND rolcanlogin AND NOT rolsuper AND NOT rolreplication
     AND rolpassword LIKE 'SCRAM-SHA-256$%' $$;
REVOKE ALL ON FUNCTION ${POOLER_SCHEMA}.get_auth(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ${POOLER_SCHEMA}.get_auth(text) TO ${declarations.pooler};
COMMENT ON FUNCTION ${POOLER_SCHEMA}.get_auth(text) IS '${POOLER_AUTH_MARK}';`;

/**
 * Makes (or remakes) the lookup function unless its current definition is there, for both appliers; true when
 * it did. One transaction, kept out of pg_stat_statements (noise among the queries, and it names the secrets'
 * format). `client` is the superuser's, in the application database.
 */
export async function ensurePoolerAuth(client: {
  query(sql: string): Promise<{ rows: Array<Record<string, unknown>> }>;
}): Promise<boolean> {
  const { rows } = await client.query(
    `SELECT obj_description(to_regprocedure('${POOLER_SCHEMA}.get_auth(text)'), 'pg_proc') AS d`,
  );
  if (rows[0]?.d === POOLER_AUTH_MARK) return false;
  await client.query(`BEGIN; SET LOCAL pg_stat_statements.track = 'none'; ${POOLER_AUTH_SQL} COMMIT;`);
  return true;
}

export const AUTH_QUERY = `SELECT usename, passwd FROM ${POOLER_SCHEMA}.get_auth($1)`;

export function pgbouncerIni(p: PoolerSettings, w: PgbouncerWhere): string {
  return [
    '; Written by edupulse-db from infra/settings.ts (pooler); changes here are overwritten.',
    '[databases]',
    ...Object.entries(w.databases).map(([k, v]) => `${k} = ${v}`),
    '',
    '[pgbouncer]',
    `listen_addr = ${w.listenAddr}`,
    `listen_port = ${w.port}`,
    `unix_socket_dir = ${w.unixSocketDir}`,
    'auth_type = hba',
    `auth_hba_file = ${w.hbaFile}`,
    // Only the admin console's OS user, with no password (peer): PgBouncer 1.18 would otherwise look it up
    // with auth_query in a database the console does not have, and hang the login.
    `auth_file = ${w.authFile}`,
    `auth_user = ${declarations.pooler}`,
    `auth_query = ${AUTH_QUERY}`,
    `pool_mode = ${p.poolMode}`,
    `default_pool_size = ${p.defaultPoolSize}`,
    `reserve_pool_size = ${p.reservePoolSize}`,
    'reserve_pool_timeout = 1',
    `max_client_conn = ${p.maxClientConn}`,
    `max_db_connections = ${p.maxDbConnections}`,
    // After a failover the old server is gone: retry (the new one, once reloaded) within 0.1 s, not the default 15 s.
    'server_login_retry = 0.1',
    'server_connect_timeout = 5',
    `admin_users = ${w.adminUser}`,
    `stats_users = ${w.adminUser}`,
    // Drivers send these at startup; PgBouncer would refuse the connection otherwise.
    'ignore_startup_parameters = extra_float_digits,options',
    ...(w.pidfile ? [`pidfile = ${w.pidfile}`] : []),
    ...(w.logfile ? [`logfile = ${w.logfile}`] : []),
    '',
  ].join('\n');
}

/** PgBouncer's own hba: the admin console by peer on its socket, clients by SCRAM from these addresses. */
export function pgbouncerHba(adminUser: string, addresses: string[]): string {
  return [
    '# Written by edupulse-db: the admin console by peer on the socket, clients by SCRAM.',
    `local pgbouncer ${adminUser} peer`,
    ...addresses.map((a) => `host all all ${a} scram-sha-256`),
    '',
  ].join('\n');
}

/** The auth_file: the admin console's user with no password (it logs in by peer). */
export const pgbouncerAuthFile = (adminUser: string) => `"${adminUser}" ""\n`;
