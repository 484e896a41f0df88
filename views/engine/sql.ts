// Pure SQL builders for declared indexes and views, tested by exact string.
import { createHash } from 'node:crypto';
import type { IndexDecl, ViewDecl } from '../index.ts';
import { quoteIdent as qi, quoteLiteral, quoteQualified } from '../../ops-scripts/lib/db.ts';

export const MARK = 'edupulse-db managed';
/** A rebuilt index is built under this suffix, then swapped in. */
export const NEW_SUFFIX = '__new';

export const sha = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 16);

/** The declaration's identity: any change to it means the object is rebuilt or replaced. */
export const indexHash = (d: IndexDecl) =>
  sha(
    JSON.stringify([
      d.schema,
      d.table,
      d.columns,
      d.unique ?? false,
      d.method ?? 'btree',
      d.include ?? [],
      d.where ?? '',
    ]),
  );
export const viewHash = (v: ViewDecl) => sha(v.query);

/** `edupulse-db managed decl=<hash of the declaration> def=<fingerprint of the live definition>` */
export const marker = (decl: string, def: string) => `${MARK} decl=${decl} def=${def}`;

export function parseMarker(comment: string | null): { decl: string; def: string } | undefined {
  const m = /^edupulse-db managed decl=(\w+) def=(\w+)$/.exec(comment ?? '');
  return m ? { decl: m[1]!, def: m[2]! } : undefined;
}

const column = (c: string) => {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(\s+(?:ASC|DESC)(?:\s+NULLS\s+(?:FIRST|LAST))?)?$/i.exec(c.trim());
  // A plain column name is quoted; anything else is an expression, in parentheses.
  return m ? `${qi(m[1]!)}${m[2] ?? ''}` : `(${c})`;
};

export const qualified = quoteQualified;

/** The index's keys, INCLUDE and WHERE: the part every form of its CREATE INDEX shares. */
const indexBody = (d: IndexDecl) =>
  ` USING ${d.method ?? 'btree'} (${d.columns.map(column).join(', ')})` +
  `${d.include?.length ? ` INCLUDE (${d.include.map((c) => qi(c)).join(', ')})` : ''}` +
  `${d.where ? ` WHERE ${d.where}` : ''}`;

/** CONCURRENTLY on the declared table, or on `on` (one partition of it). */
export function createIndex(d: IndexDecl, name = d.name, on?: { schema: string; name: string }): string {
  const table = on ? qualified(on.schema, on.name) : qualified(d.schema, d.table);
  return `CREATE ${d.unique ? 'UNIQUE ' : ''}INDEX CONCURRENTLY ${qi(name)} ON ${table}${indexBody(d)}`;
}

/**
 * On a partitioned table: the parent's index alone (ON ONLY: no partition is read, it starts invalid),
 * which becomes valid once every partition's index, built concurrently, is attached to it.
 */
export const createIndexOnOnly = (d: IndexDecl, name = d.name) =>
  `CREATE ${d.unique ? 'UNIQUE ' : ''}INDEX ${qi(name)} ON ONLY ${qualified(d.schema, d.table)}${indexBody(d)}`;

export const attachIndex = (schema: string, parent: string, childSchema: string, child: string) =>
  `ALTER INDEX ${qualified(schema, parent)} ATTACH PARTITION ${qualified(childSchema, child)}`;

/** A partition's index: `<index>__<partition>`, shortened with a hash to fit PostgreSQL's 63 bytes. */
export function partitionIndexName(index: string, partition: string): string {
  const full = `${index}__${partition}`;
  return Buffer.byteLength(full) <= 63 ? full : `${full.slice(0, 46)}_${sha(full)}`;
}

export const dropIndex = (schema: string, name: string) =>
  `DROP INDEX CONCURRENTLY IF EXISTS ${qualified(schema, name)}`;

/**
 * A plain DROP, which takes its table's lock briefly: for a partitioned index (it cannot be dropped
 * CONCURRENTLY) and inside a transaction (the seeder's load).
 */
export const dropIndexInPlace = (schema: string, name: string) => `DROP INDEX IF EXISTS ${qualified(schema, name)}`;

createIndex.reverse = (d: IndexDecl) => dropIndex(d.schema, d.name);

export const renameIndex = (schema: string, from: string, to: string) =>
  `ALTER INDEX ${qualified(schema, from)} RENAME TO ${qi(to)}`;
export const commentOnIndex = (schema: string, name: string, text: string) =>
  `COMMENT ON INDEX ${qualified(schema, name)} IS ${quoteLiteral(text)}`;

export const createOrReplaceView = (v: ViewDecl) =>
  `CREATE OR REPLACE VIEW ${qualified(v.schema, v.name)} AS\n${v.query}`;
export const dropView = (schema: string, name: string) => `DROP VIEW IF EXISTS ${qualified(schema, name)}`;
createOrReplaceView.reverse = (v: ViewDecl) => dropView(v.schema, v.name);
export const commentOnView = (schema: string, name: string, text: string) =>
  `COMMENT ON VIEW ${qualified(schema, name)} IS ${quoteLiteral(text)}`;
