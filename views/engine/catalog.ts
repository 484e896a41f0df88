// What the live catalog holds: every index (with indisvalid) and every view,
// with their comments, outside system schemas. Each carries a fingerprint of
// its definition taken from the raw catalog (pg_index, pg_rewrite) rather than
// pg_get_indexdef / pg_get_viewdef, which lock the table: reading must not
// wait behind a session holding a table, or plan would hang where apply is
// meant to fail fast naming the table.
import type { PartitionDecl } from '../index.ts';
import { quoteIdent, quoteQualified, type PgClient } from '../../ops-scripts/lib/db.ts';
import { parseBound, type LivePartitioned } from './partitions.ts';

export interface LiveIndex {
  schema: string;
  name: string;
  table: string;
  valid: boolean;
  fingerprint: string;
  comment: string | null;
}
export interface LiveView {
  schema: string;
  name: string;
  fingerprint: string;
  comment: string | null;
}
export interface LiveObjects {
  indexes: LiveIndex[];
  views: LiveView[];
  /** The declared partitioned tables as they are (absent: the table does not exist). */
  partitioned: LivePartitioned[];
  /** The server's current_date: months are counted from it, not from this machine's clock. */
  today: string;
}

const USER = `n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'`;

/** Everything that defines an index (over pg_index i and its pg_class c), hashed. */
export const INDEX_FINGERPRINT = `md5(concat_ws('|', i.indrelid::regclass::text, c.relam, i.indisunique, i.indnkeyatts, i.indkey::text,
  i.indclass::text, i.indcollation::text, i.indoption::text, i.indexprs::text, i.indpred::text, c.reloptions::text))`;
/** A view's rewrite rule (over its pg_class c), hashed. */
export const VIEW_FINGERPRINT = `md5((SELECT string_agg(r.ev_action::text, '' ORDER BY r.oid) FROM pg_rewrite r WHERE r.ev_class = c.oid))`;

/** A declared table's partitions and bounds, and the months with rows in its default partition. */
async function readPartitioned(client: PgClient, d: PartitionDecl): Promise<LivePartitioned | undefined> {
  const { rows } = await client.query<{
    kind: string;
    schema: string | null;
    name: string | null;
    bound: string | null;
  }>(
    `SELECT t.relkind AS kind, pn.nspname AS schema, p.relname AS name, pg_get_expr(p.relpartbound, p.oid) AS bound
       FROM pg_class t LEFT JOIN pg_inherits h ON h.inhparent = t.oid
       LEFT JOIN pg_class p ON p.oid = h.inhrelid LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace
      WHERE t.oid = to_regclass($1) ORDER BY 3`,
    [quoteQualified(d.schema, d.table)],
  );
  if (!rows[0]) return undefined;
  const live: LivePartitioned = {
    schema: d.schema,
    table: d.table,
    partitioned: rows[0].kind === 'p',
    partitions: [],
    defaultMonths: [],
  };
  for (const r of rows.filter((r) => r.name !== null)) {
    const b = parseBound(r.bound ?? '');
    live.partitions.push(
      b === 'default'
        ? { schema: r.schema!, name: r.name!, isDefault: true }
        : { schema: r.schema!, name: r.name!, from: b?.from ?? null, to: b?.to ?? null, isDefault: false },
    );
    if (b === 'default') {
      const months = await client.query<{ m: string }>(
        `SELECT DISTINCT to_char(date_trunc('month', ${quoteIdent(d.column)}), 'YYYY-MM-DD') AS m
           FROM ${quoteQualified(r.schema!, r.name!)} ORDER BY 1`,
      );
      live.defaultMonths = months.rows.map((m) => m.m);
    }
  }
  return live;
}

export async function readObjects(client: PgClient, partitionDecls: PartitionDecl[] = []): Promise<LiveObjects> {
  const indexes = (
    await client.query<LiveIndex>(
      `SELECT n.nspname AS schema, c.relname AS name, t.relname AS table, i.indisvalid AS valid,
            ${INDEX_FINGERPRINT} AS fingerprint, obj_description(i.indexrelid, 'pg_class') AS comment
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE ${USER} ORDER BY 1, 2`,
    )
  ).rows;
  const views = (
    await client.query<LiveView>(
      `SELECT n.nspname AS schema, c.relname AS name, ${VIEW_FINGERPRINT} AS fingerprint, obj_description(c.oid, 'pg_class') AS comment
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'v' AND ${USER} ORDER BY 1, 2`,
    )
  ).rows;
  const partitioned: LivePartitioned[] = [];
  for (const d of partitionDecls) {
    const live = await readPartitioned(client, d);
    if (live) partitioned.push(live);
  }
  const today = (await client.query<{ d: string }>("SELECT to_char(current_date, 'YYYY-MM-DD') AS d")).rows[0]!.d;
  return { indexes, views, partitioned, today };
}

/** One index's validity and fingerprint, or undefined when there is none by that (qualified) name. */
export async function liveIndex(
  client: PgClient,
  qualifiedName: string,
): Promise<{ valid: boolean; fingerprint: string } | undefined> {
  const { rows } = await client.query<{ valid: boolean; fingerprint: string }>(
    `SELECT i.indisvalid AS valid, ${INDEX_FINGERPRINT} AS fingerprint FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indexrelid = to_regclass($1)`,
    [qualifiedName],
  );
  return rows[0];
}

export async function viewFingerprint(client: PgClient, qualifiedName: string): Promise<string> {
  const { rows } = await client.query<{ f: string }>(
    `SELECT ${VIEW_FINGERPRINT} AS f FROM pg_class c WHERE c.oid = $1::regclass`,
    [qualifiedName],
  );
  return rows[0]!.f;
}
