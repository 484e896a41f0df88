// An index dropped and made again from its own definition (the seeder builds
// secondary indexes after a bulk COPY) is still ours: its marker carries over
// with the fingerprint of the index as rebuilt, since PostgreSQL may print the
// same definition differently (a predicate's IN list comes back as = ANY).
// A marker that already showed drift (changed by hand) is kept as it was.
import type { PgClient } from '../../ops-scripts/lib/db.ts';
import { liveIndex } from './catalog.ts';
import * as sql from './sql.ts';

export interface IndexSnapshot {
  schema: string;
  name: string;
  /** pg_get_indexdef: the statement that makes it again (on a partitioned table, ON ONLY it). */
  definition: string;
  comment: string | null;
  fingerprint: string;
}

/** Every index on `tables` that backs no constraint, as it is now. */
export async function snapshotIndexes(client: PgClient, tables: string[]): Promise<IndexSnapshot[]> {
  const snapshots: IndexSnapshot[] = [];
  const { rows } = await client.query<{ schema: string; name: string; definition: string; comment: string | null }>(
    `SELECT n.nspname AS schema, c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition,
            obj_description(i.indexrelid, 'pg_class') AS comment
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE i.indrelid = ANY ($1::regclass[])
        AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
      ORDER BY 1, 2`,
    [tables],
  );
  for (const r of rows) {
    const live = await liveIndex(client, sql.qualified(r.schema, r.name));
    snapshots.push({ ...r, fingerprint: live!.fingerprint });
  }
  return snapshots;
}

/** Inside the caller's transaction (a rollback brings the index back). */
export const dropSnapshotIndex = (ix: IndexSnapshot) => sql.dropIndexInPlace(ix.schema, ix.name);

/** Makes the index again as snapshotted, with its comment (a marker moved to the rebuilt fingerprint). */
export async function recreateIndex(client: PgClient, ix: IndexSnapshot): Promise<void> {
  // Without ONLY: a partitioned table's index is built on each partition too (in the caller's transaction).
  await client.query(ix.definition.replace(/ ON ONLY /, ' ON '));
  const mark = sql.parseMarker(ix.comment);
  let comment = ix.comment;
  if (mark && mark.def === ix.fingerprint) {
    const live = await liveIndex(client, sql.qualified(ix.schema, ix.name));
    comment = sql.marker(mark.decl, live!.fingerprint);
  }
  if (comment !== null) await client.query(sql.commentOnIndex(ix.schema, ix.name, comment));
}
