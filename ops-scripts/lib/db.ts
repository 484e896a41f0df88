// Every connection goes through these helpers; cleanup is in `finally`.
import type pg from 'pg';
import { refused } from './errors.ts';

export type PgConfig = pg.ClientConfig;
export type PgClient = pg.Client;

let pgModule: typeof pg | undefined;
/** node-postgres is loaded on first use: a job's --help does not pay for it. */
export const loadPg = async (): Promise<typeof pg> => (pgModule ??= (await import('pg')).default);

export async function withClient<T>(config: PgConfig, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const { Client } = await loadPg();
  const client = new Client(config);
  // An idle client can still get an error event (server shut down); without a listener it would crash the process.
  client.on('error', () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

export async function withTransaction<T>(client: pg.Client, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/**
 * Runs `fn` holding a session advisory lock, or refuses (exit 3) naming the
 * session that holds it.
 */
export async function withAdvisoryLock<T>(
  client: pg.Client,
  key: bigint,
  what: string,
  fn: () => Promise<T>,
): Promise<T> {
  const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [
    key.toString(),
  ]);
  if (!rows[0]?.ok) {
    const holder = await client.query<{ pid: number; application_name: string; backend_start: Date }>(
      `SELECT a.pid, a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a USING (pid)
        WHERE l.locktype = 'advisory' AND l.granted
          AND ((l.classid::bigint << 32) | l.objid::bigint) = $1::bigint`,
      [key.toString()],
    );
    const h = holder.rows[0];
    throw refused(
      `${what} is already running${h ? ` (pid ${h.pid}, ${h.application_name || 'no application name'}, since ${h.backend_start.toISOString()})` : ''}`,
      'wait for it to finish, then run again',
    );
  }
  try {
    return await fn();
  } finally {
    await client.query('SELECT pg_advisory_unlock($1::bigint)', [key.toString()]).catch(() => {});
  }
}

/** A double-quoted SQL identifier; the one helper every piece of SQL text uses. */
export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

/** schema.name, each part quoted by quoteIdent. */
export const quoteQualified = (schema: string, name: string) => `${quoteIdent(schema)}.${quoteIdent(name)}`;

/** A SQL string literal, for the few places (DDL) that cannot take parameters. */
export function quoteLiteral(value: string): string {
  return "'" + value.replace(/'/g, "''") + "'";
}
