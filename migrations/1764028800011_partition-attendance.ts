// attendance_records, partitioned by month (#19): it is the largest table and
// grows by a school year at a time, and retiring a month of it is a DETACH and
// a DROP (3 ms at 200k students) instead of a DELETE (11 s, and the dead rows
// vacuum must then clean; bench:partition). Converted online, without stopping
// writers (migrations/engine/partition-table.ts says how): the table as it is
// becomes the first partition, FROM (MINVALUE) TO a bound a month or more
// ahead; the reconcile engine keeps the monthly partitions after it and
// retires old ones (views/partitions.ts). The key becomes (id, date): a
// partitioned table's unique keys must hold its partition key; nothing
// references attendance rows, and id still comes from its sequence.
// Not in a transaction: the concurrent index build cannot run in one, and
// each step is its own short transaction (node-pg-migrate commits the
// migrations before this one first).
import type { MigrationBuilder } from 'node-pg-migrate';
import {
  addBound,
  createKeyIndex,
  dropInvalidKeyIndex,
  dropPartitionSchema,
  swapIn,
  unpartition,
  validateBound,
  type PartitionedTable,
} from './engine/partition-table.ts';

export const ATTENDANCE: PartitionedTable = {
  schema: 'public',
  table: 'attendance_records',
  column: 'date',
  key: ['id'],
  partitionSchema: 'edupulse_partitions',
};

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.noTransaction();
  // Owner-only: app roles reach the rows through public.attendance_records (and its triggers), never a partition.
  pgm.sql(`CREATE SCHEMA IF NOT EXISTS ${ATTENDANCE.partitionSchema}`);
  pgm.sql(addBound(ATTENDANCE));
  pgm.sql(validateBound(ATTENDANCE));
  pgm.sql(dropInvalidKeyIndex(ATTENDANCE));
  // Every step checks for itself whether it has run, but for the concurrent index build, which the server refuses
  // on a table already partitioned: a run cut short after its swap (before node-pg-migrate recorded it) is asked
  // here. migrate:lint renders SQL without a database: then every step is listed.
  const kind = await pgm.db
    .select(`SELECT relkind::text AS kind FROM pg_class WHERE oid = to_regclass('public.attendance_records')`)
    .then((rows: Array<{ kind: string }>) => rows[0]?.kind)
    .catch(() => undefined);
  if (kind !== 'p') pgm.sql(createKeyIndex(ATTENDANCE));
  pgm.sql(swapIn(ATTENDANCE));
  // Autovacuum never analyzes a partitioned table: its own statistics (used to plan joins over it) come from here
  // and from the vacuum job.
  pgm.sql(`ANALYZE public.attendance_records`);
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.noTransaction();
  pgm.sql(unpartition(ATTENDANCE));
  pgm.sql(dropPartitionSchema(ATTENDANCE));
}
