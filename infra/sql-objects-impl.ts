// The work of the dynamic providers in sql-objects.ts: migrations (the runner
// in migrations/engine) and indexes and views (the reconcile engine in
// views/engine). Pulumi's dynamic-provider host loads this module compiled,
// from dist/infra/, in a plain node process; the tests call it in-process.
import { migrate, migratorConfig } from '../migrations/engine/migrate.ts';
import { withClient, withTransaction, type PgConfig } from '../ops-scripts/lib/db.ts';
import { scramVerifier } from '../roles/engine/scram.ts';
import { setPasswordVerifier, UNTRACKED_PASSWORD_STATEMENTS } from '../roles/engine/sql.ts';
import { planReconcile, reconcile } from '../views/engine/index.ts';
import { ensurePoolerAuth } from './pgbouncer.ts';
import { syncStandbyNames } from '../ops-scripts/lib/topology.ts';

/** How a dynamic provider reaches the database as the migrator (which becomes the owner role). */
export interface OwnerConnection {
  host: string;
  port: number;
  database: string;
  migratorPassword: string;
  sslmode?: string;
  lockTimeout?: string;
  /** PEM of the CA that signs the server's certificate (verify-ca, verify-full). */
  sslrootcert?: string;
}

/** The engine's marker for a value not known yet (a preview before its inputs exist); see @pulumi/pulumi runtime/rpc. */
export const UNKNOWN = '04da6b54-80e4-46f7-96ec-b56ff0331ba9';

export function hasUnknown(v: unknown): boolean {
  if (v === UNKNOWN) return true;
  if (Array.isArray(v)) return v.some(hasUnknown);
  if (v && typeof v === 'object') return Object.values(v).some(hasUnknown);
  return false;
}

/**
 * node-postgres' TLS options for a libpq sslmode, honestly: require encrypts
 * without verifying (as libpq does), verify-ca checks the chain, verify-full
 * the chain and the host name. prefer/allow cannot be expressed (no fallback
 * to plaintext in node-postgres), so they are refused.
 */
export function sslOptions(c: Pick<OwnerConnection, 'sslmode' | 'sslrootcert'>): PgConfig['ssl'] {
  switch (c.sslmode ?? 'disable') {
    case 'disable':
      return undefined;
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
      // The chain is verified; the name in the certificate is not compared with the host.
      return { rejectUnauthorized: true, ca: c.sslrootcert, checkServerIdentity: () => undefined };
    case 'verify-full':
      return { rejectUnauthorized: true, ca: c.sslrootcert };
    default:
      throw new Error(`sslmode "${c.sslmode}" is not supported here: use disable, require, verify-ca or verify-full`);
  }
}

export function ownerConfig(c: OwnerConnection): PgConfig {
  return migratorConfig({ host: c.host, port: c.port, database: c.database, ssl: sslOptions(c) }, c.migratorPassword, {
    lockTimeout: c.lockTimeout,
  });
}

export async function applyMigrations(c: OwnerConnection): Promise<string[]> {
  return (await migrate(ownerConfig(c), { direction: 'up' })).map((m) => m.name);
}

export async function applyObjects(c: OwnerConnection, declaredNothing = false): Promise<string[]> {
  const steps = await reconcile(ownerConfig(c), declaredNothing ? { declared: { indexes: [], views: [] } } : {});
  const bad = steps.filter((s) => s.status === 'failed');
  if (bad.length) throw new Error(`indexes and views: ${bad.map((s) => `${s.action}: ${s.detail}`).join('; ')}`);
  return steps.map((s) => s.action);
}

/** Whether the live catalog differs from the declarations (the engine's plan is not empty). */
export async function objectsDrift(c: OwnerConnection): Promise<boolean> {
  return (await withClient(ownerConfig(c), (client) => planReconcile(client))).length > 0;
}

/** How the superuser-password resource reaches the server (the container's published port or address). */
export interface AdminConnection {
  host: string;
  port: number;
  user: string;
  sslmode?: string;
  sslrootcert?: string;
}

const adminConfig = (c: AdminConnection, password: string): PgConfig => ({
  host: c.host,
  port: c.port,
  user: c.user,
  password,
  database: 'postgres',
  ssl: sslOptions(c),
  application_name: 'edupulse-db pulumi',
});

async function canLogin(c: AdminConnection, password: string): Promise<boolean> {
  return withClient(adminConfig(c, password), async () => true).catch((err: { code?: string }) => {
    if (err.code === '28P01') return false; // password authentication failed
    throw err;
  });
}

/** A fresh container got the password at initdb; a data directory kept from another stack may hold another one. */
export async function checkSuperuser(c: AdminConnection, password: string): Promise<void> {
  if (!(await canLogin(c, password))) {
    throw new Error(
      `the server at ${c.host}:${c.port} refuses the configured password for ${c.user}: its data directory was initialized with another one ` +
        '(the image applies POSTGRES_PASSWORD only at initdb); set edupulse:postgresPassword to the one it has, then rotate',
    );
  }
}

/**
 * Rotates the superuser's password with ALTER ROLE (a SCRAM verifier, kept
 * out of logs and pg_stat_statements), logged in with the old one. The
 * container is not replaced: the image would not apply a new POSTGRES_PASSWORD
 * to an existing cluster anyway. Idempotent: a retry after the change finds
 * the new password working and does nothing.
 */
export async function rotateSuperuser(c: AdminConnection, oldPassword: string, newPassword: string): Promise<void> {
  if (await canLogin(c, newPassword)) return;
  await withClient(adminConfig(c, oldPassword), (client) =>
    withTransaction(client, async () => {
      for (const s of UNTRACKED_PASSWORD_STATEMENTS) await client.query(s);
      await client.query(setPasswordVerifier(c.user, scramVerifier(newPassword)));
    }),
  );
}

/** PgBouncer's lookup function (infra/pgbouncer.ts) in the application database, as the superuser; idempotent. */
export async function applyPoolerAuth(c: AdminConnection, password: string, database: string): Promise<void> {
  await withClient({ ...adminConfig(c, password), database }, (client) => ensurePoolerAuth(client));
}

/**
 * synchronous_standby_names on the primary, once every named standby streams (bounded wait): naming a standby
 * that is not there yet would stop every write. ALTER SYSTEM and a reload; '' for asynchronous.
 */
export async function applySyncStandbys(
  c: AdminConnection,
  password: string,
  names: string[],
  timeoutMs = 120_000,
): Promise<void> {
  await withClient(adminConfig(c, password), async (client) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const streaming = (
        await client.query<{ n: string }>(
          `SELECT application_name AS n FROM pg_stat_replication WHERE state = 'streaming'`,
        )
      ).rows.map((r) => r.n);
      const missing = names.filter((n) => !streaming.includes(n));
      if (!missing.length) break;
      if (Date.now() > deadline)
        throw new Error(
          `standby ${missing.join(', ')} is not streaming after ${timeoutMs / 1000} s; synchronous replication not set`,
        );
      await new Promise((r) => setTimeout(r, 500));
    }
    const want = syncStandbyNames(names);
    await client.query(
      want ? `ALTER SYSTEM SET synchronous_standby_names = '${want}'` : 'ALTER SYSTEM RESET synchronous_standby_names',
    );
    await client.query('SELECT pg_reload_conf()');
  });
}
