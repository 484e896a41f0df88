// Table fingerprints: row count and an order-independent sum of row hashes,
// for every user table. Taken in the snapshot a dump is made from, they let a
// restored copy be checked row for row. A partitioned table is read whole
// through its parent (its partitions are not read a second time).
import type { PgClient } from '../db.ts';

export type Fingerprints = Record<string, { rows: number; hash: string }>;

export async function fingerprintTables(client: PgClient): Promise<Fingerprints> {
  const { rows: tables } = await client.query<{ t: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' ORDER BY 1`,
  );
  const out: Fingerprints = {};
  for (const { t } of tables) {
    const { rows } = await client.query<{ n: string; h: string }>(
      `SELECT count(*)::text AS n, coalesce(sum(hashtextextended(x::text, 0)::numeric), 0)::text AS h FROM ${t} x`,
    );
    out[t] = { rows: Number(rows[0]!.n), hash: rows[0]!.h };
  }
  return out;
}

export function compareFingerprints(expected: Fingerprints, actual: Fingerprints): string[] {
  const problems: string[] = [];
  for (const [t, e] of Object.entries(expected)) {
    const a = actual[t];
    if (!a) problems.push(`${t} is missing`);
    else if (a.rows !== e.rows) problems.push(`${t} has ${a.rows} rows, the dump's snapshot had ${e.rows}`);
    else if (a.hash !== e.hash) problems.push(`${t} has the same ${a.rows} rows count but different contents`);
  }
  for (const t of Object.keys(actual)) if (!expected[t]) problems.push(`${t} was not in the dump's snapshot`);
  return problems;
}
