// What a migration's SQL would destroy: the tables it drops or truncates and
// the columns it drops, by name, that hold rows now. `migrate down` and
// `redo` read it from a dry run first and are refused (exit 3) when any of
// the data schemas' tables or columns holds rows, unless --force: reverting
// the first migration drops students with every row, and node-pg-migrate
// would do it without a word.
//
// The toolkit's own schemas (edupulse_derived: rebuilt from the sources by the
// migrations; edupulse_meta: canaries, probes and the migration history) are
// not data at risk. SQL that drops a table through EXECUTE format(...) is not
// seen; the project's migrations name what they drop.
import type { PgClient } from '../../ops-scripts/lib/db.ts';

const TOOLKIT_SCHEMAS = ['edupulse_derived', 'edupulse_meta', 'pg_catalog', 'information_schema'];
const COUNT_BOUND = 1_000_000;

/** An identifier as SQL writes it: "quoted" (with "" inside) or plain. */
const IDENT = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;
const QUALIFIED = String.raw`${IDENT}(?:\s*\.\s*${IDENT})?`;
const LIST = String.raw`${QUALIFIED}(?:\s*,\s*${QUALIFIED})*`;

export interface DropTarget {
  /** The table as written (possibly schema-qualified, quoted). */
  table: string;
  /** Set when only a column goes. */
  column?: string;
  /** Set when a whole schema goes (DROP SCHEMA ... CASCADE). */
  schema?: string;
}

/** The SQL without comments and string literals (a DROP inside a string or a comment is not a drop). */
function strip(sql: string): string {
  return sql
    .replace(/--[^\n]*/g, ' ')
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/'(?:[^']|'')*'/g, "''");
}

const split = (list: string) => list.split(new RegExp(String.raw`\s*,\s*(?=${IDENT})`)).map((s) => s.trim());

/** The tables, columns and schemas the statements drop or truncate by name. */
export function dropTargets(sql: string): DropTarget[] {
  const text = strip(sql);
  const out: DropTarget[] = [];
  for (const m of text.matchAll(new RegExp(String.raw`\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(${LIST})`, 'gi')))
    for (const table of split(m[1]!)) out.push({ table });
  for (const m of text.matchAll(new RegExp(String.raw`\bTRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?(${LIST})`, 'gi')))
    for (const table of split(m[1]!)) out.push({ table });
  for (const m of text.matchAll(
    new RegExp(String.raw`\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(${QUALIFIED})\s+([^;]*)`, 'gi'),
  )) {
    for (const c of m[2]!.matchAll(
      new RegExp(
        String.raw`\bDROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(?!(?:CONSTRAINT|DEFAULT|NOT|EXPRESSION|IDENTITY)\b)(${IDENT})`,
        'gi',
      ),
    ))
      out.push({ table: m[1]!.trim(), column: c[1]! });
  }
  for (const m of text.matchAll(
    new RegExp(String.raw`\bDROP\s+SCHEMA\s+(?:IF\s+EXISTS\s+)?(${IDENT})[^;]*\bCASCADE\b`, 'gi'),
  ))
    out.push({ table: '', schema: m[1]! });
  return out;
}

const unquote = (ident: string) =>
  ident.startsWith('"') ? ident.slice(1, -1).replace(/""/g, '"') : ident.toLowerCase();

/**
 * Of `targets`, those that hold data now: a table of a data schema with a row, a column with a non-null value.
 * Each described for a person ("table public.students (1,000 rows)").
 */
export async function dataAtRisk(c: PgClient, targets: DropTarget[]): Promise<string[]> {
  const found: string[] = [];
  const seen = new Set<string>();
  const tables: Array<{ oid: string; column?: string }> = [];
  for (const t of targets) {
    if (t.schema) {
      const { rows } = await c.query<{ oid: string }>(
        `SELECT c.oid::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition`,
        [unquote(t.schema)],
      );
      tables.push(...rows.map((r) => ({ oid: r.oid })));
      continue;
    }
    const { rows } = await c.query<{ oid: string | null }>('SELECT to_regclass($1)::oid::text AS oid', [t.table]);
    if (rows[0]?.oid) tables.push({ oid: rows[0].oid, column: t.column && unquote(t.column) });
  }
  for (const { oid, column } of tables) {
    const key = `${oid}/${column ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const { rows } = await c.query<{
      name: string;
      schema: string;
      kind: string;
      estimate: number;
      attr: string | null;
    }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name, n.nspname AS schema, c.relkind AS kind,
              (SELECT coalesce(sum(greatest(p.reltuples, 0)), 0) FROM pg_partition_tree(c.oid) t
                 JOIN pg_class p ON p.oid = t.relid)::float8 AS estimate,
              (SELECT quote_ident(a.attname) FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped) AS attr
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::oid`,
      [oid, column ?? null],
    );
    const r = rows[0];
    if (!r || TOOLKIT_SCHEMAS.includes(r.schema) || !['r', 'p'].includes(r.kind)) continue;
    if (column && !r.attr) continue;
    // Counted up to a bound: a reverted migration should not wait on counting a billion rows to say so.
    const where = column ? ` WHERE ${r.attr} IS NOT NULL` : '';
    const n = Number(
      (await c.query(`SELECT count(*) AS n FROM (SELECT 1 FROM ${r.name}${where} LIMIT ${COUNT_BOUND + 1}) x`)).rows[0]
        .n,
    );
    if (!n) continue;
    const count = n > COUNT_BOUND ? `more than ${COUNT_BOUND.toLocaleString('en-US')}` : n.toLocaleString('en-US');
    found.push(
      column ? `column ${r.name}.${r.attr} (${count} values)` : `table ${r.name} (${count} row${n === 1 ? '' : 's'})`,
    );
  }
  return found;
}
