// Monthly partitions of a declared table (views/partitions.ts): which to make
// and which to retire, from the live partitions and the server's date, and
// the SQL for each. Pure. A month is made as a plain table, any of its rows
// waiting in the DEFAULT partition moved in, then attached (its indexes,
// triggers and foreign keys come from the parent), all in one transaction; a
// retired partition is detached and dropped in one. A month a partition
// covers only in part is a conflict, reported, never forced.
import type { PartitionDecl } from '../index.ts';
import { badInput } from '../../ops-scripts/lib/errors.ts';
import { quoteIdent as qi, quoteLiteral as ql, quoteQualified } from '../../ops-scripts/lib/db.ts';

export interface LivePartition {
  schema: string;
  name: string;
  /** Inclusive lower bound (null: MINVALUE); undefined bounds: the DEFAULT partition. */
  from?: string | null;
  /** Exclusive upper bound (null: MAXVALUE). */
  to?: string | null;
  isDefault: boolean;
}

export interface LivePartitioned {
  schema: string;
  table: string;
  partitioned: boolean;
  partitions: LivePartition[];
  /** First days of the months that have rows in the DEFAULT partition. */
  defaultMonths: string[];
}

export type PartitionAction =
  | {
      kind: 'create-partition';
      decl: PartitionDecl;
      name: string;
      from: string;
      to: string;
      /** Rows of that month wait there and are moved in. */
      defaultPartition?: { schema: string; name: string };
      reason: string;
    }
  | { kind: 'retire-partition'; decl: PartitionDecl; schema: string; name: string; reason: string }
  | { kind: 'conflict'; object: string; reason: string };

/** The first day of the month `n` months after the one `day` is in ('YYYY-MM-DD'). */
export function addMonths(day: string, n: number): string {
  const d = new Date(Date.UTC(Number(day.slice(0, 4)), Number(day.slice(5, 7)) - 1 + n, 1));
  return d.toISOString().slice(0, 10);
}

/** Whole months from the month `from` is in to the month `to` is in (negative when `to` is earlier). */
export const monthsBetween = (from: string, to: string) =>
  (Number(to.slice(0, 4)) - Number(from.slice(0, 4))) * 12 + Number(to.slice(5, 7)) - Number(from.slice(5, 7));

export const partitionName = (d: PartitionDecl, month: string) =>
  `${d.table}_${month.slice(0, 4)}_${month.slice(5, 7)}`;

/** pg_get_expr(relpartbound): a range's bounds, 'default', or undefined for anything else. */
export function parseBound(expr: string): { from: string | null; to: string | null } | 'default' | undefined {
  if (expr === 'DEFAULT') return 'default';
  const m = /^FOR VALUES FROM \((?:'(\d{4}-\d{2}-\d{2})'|MINVALUE)\) TO \((?:'(\d{4}-\d{2}-\d{2})'|MAXVALUE)\)$/.exec(
    expr,
  );
  return m ? { from: m[1] ?? null, to: m[2] ?? null } : undefined;
}

export function checkPartitionDecl(d: PartitionDecl): void {
  const where = `views/partitions.ts: ${d.schema}.${d.table}`;
  if (!Number.isInteger(d.premadeMonths) || d.premadeMonths < 0 || d.premadeMonths > 24)
    throw badInput(`${where}: premadeMonths ${d.premadeMonths} must be a whole number of months, 0 to 24`);
  // The attendance counts (and the 30-day view) read the last month: retention never reaches into it.
  if (d.retainMonths !== null && (!Number.isInteger(d.retainMonths) || d.retainMonths < 2))
    throw badInput(
      `${where}: retainMonths ${d.retainMonths} must be a whole number of months, at least 2`,
      'or null to keep everything',
    );
}

export function planPartitions(d: PartitionDecl, live: LivePartitioned | undefined, today: string): PartitionAction[] {
  checkPartitionDecl(d);
  // Not partitioned (yet): a migration converts a table; the engine only keeps its months.
  if (!live?.partitioned) return [];
  const ranges = live.partitions.filter((p) => !p.isDefault);
  const dflt = live.partitions.find((p) => p.isDefault);
  const current = addMonths(today, 0);
  const cutoff = d.retainMonths === null ? undefined : addMonths(current, -d.retainMonths);
  const months = new Set(Array.from({ length: d.premadeMonths + 1 }, (_, i) => addMonths(current, i)));
  for (const m of live.defaultMonths) if (!cutoff || m >= cutoff) months.add(m);
  const actions: PartitionAction[] = [];
  for (const from of [...months].sort()) {
    const to = addMonths(from, 1);
    const over = ranges.filter((p) => (p.from === null || p.from! < to) && (p.to === null || p.to! > from));
    if (over.length === 0) {
      const waiting = live.defaultMonths.includes(from);
      actions.push({
        kind: 'create-partition',
        decl: d,
        name: partitionName(d, from),
        from,
        to,
        ...(waiting && dflt ? { defaultPartition: { schema: dflt.schema, name: dflt.name } } : {}),
        reason: waiting ? 'its rows wait in the default partition' : from === current ? 'the current month' : 'ahead',
      });
    } else if (over.some((p) => (p.from !== null && p.from! > from) || (p.to !== null && p.to! < to))) {
      actions.push({
        kind: 'conflict',
        object: `partitions of ${d.schema}.${d.table}`,
        reason: `${over.map((p) => `${p.schema}.${p.name}`).join(', ')} cover ${from.slice(0, 7)} only in part; make whole months by hand`,
      });
    }
  }
  if (cutoff)
    for (const p of ranges)
      if (p.to !== null && p.to! <= cutoff)
        actions.push({
          kind: 'retire-partition',
          decl: d,
          schema: p.schema,
          name: p.name,
          reason: `every day in it is before ${cutoff}, past the ${d.retainMonths}-month retention`,
        });
  return actions;
}

/** One transaction: a plain table, its rows moved from the default partition, attached for [from, to). */
export function createPartition(a: Extract<PartitionAction, { kind: 'create-partition' }>): string[] {
  const d = a.decl;
  const parent = quoteQualified(d.schema, d.table);
  const part = quoteQualified(d.partitionSchema, a.name);
  const dflt = a.defaultPartition && quoteQualified(a.defaultPartition.schema, a.defaultPartition.name);
  return [
    // ATTACH checks the default partition holds no row of the new range: nobody may add one meanwhile.
    ...(dflt ? [`LOCK TABLE ${dflt} IN ACCESS EXCLUSIVE MODE`] : []),
    `CREATE TABLE ${part} (LIKE ${parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)`,
    ...(dflt
      ? [
          `WITH moved AS (DELETE FROM ${dflt} WHERE ${qi(d.column)} >= ${ql(a.from)} AND ${qi(d.column)} < ${ql(a.to)} RETURNING *)
INSERT INTO ${part} SELECT * FROM moved`,
        ]
      : []),
    `ALTER TABLE ${parent} ATTACH PARTITION ${part} FOR VALUES FROM (${ql(a.from)}) TO (${ql(a.to)})`,
  ];
}

/** One transaction: detached, then dropped with its rows. */
export const retirePartition = (a: Extract<PartitionAction, { kind: 'retire-partition' }>): string[] => [
  `ALTER TABLE ${quoteQualified(a.decl.schema, a.decl.table)} DETACH PARTITION ${quoteQualified(a.schema, a.name)}`,
  `DROP TABLE ${quoteQualified(a.schema, a.name)}`,
];
