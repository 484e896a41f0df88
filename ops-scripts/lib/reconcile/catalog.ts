// What the live catalog holds: every index (with indisvalid and the server's
// own definition) and every view, with their comments, outside system schemas.
import type { PgClient } from '../db.ts';

export interface LiveIndex { schema: string; name: string; table: string; valid: boolean; def: string; comment: string | null }
export interface LiveView { schema: string; name: string; def: string; comment: string | null }
export interface LiveObjects { indexes: LiveIndex[]; views: LiveView[] }

const USER = `n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'`;

export async function readObjects(client: PgClient): Promise<LiveObjects> {
  const indexes = (await client.query<LiveIndex>(
    `SELECT n.nspname AS schema, c.relname AS name, t.relname AS table, i.indisvalid AS valid,
            pg_get_indexdef(i.indexrelid) AS def, obj_description(i.indexrelid, 'pg_class') AS comment
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE ${USER} ORDER BY 1, 2`)).rows;
  const views = (await client.query<LiveView>(
    `SELECT n.nspname AS schema, c.relname AS name, pg_get_viewdef(c.oid) AS def, obj_description(c.oid, 'pg_class') AS comment
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'v' AND ${USER} ORDER BY 1, 2`)).rows;
  return { indexes, views };
}
