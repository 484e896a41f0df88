// Partition declarations: which range-partitioned tables the reconcile engine
// keeps, month by month. A table is converted by a migration (attendance:
// migration partition-attendance); from then on `apply` (and the daily vacuum
// job, so months keep coming without a deploy) makes each month's partition
// ahead of time and retires partitions past the retention. A row no partition
// holds lands in the table's DEFAULT partition and is moved into its month's
// partition when that is made.

export interface PartitionDecl {
  schema: string;
  table: string;
  /** The range partition key: a date column. */
  column: string;
  /** Where its partitions are made: a schema where app roles have no grant (rows only through the table). */
  partitionSchema: string;
  /** Months made ahead of the current one. */
  premadeMonths: number;
  /**
   * Whole months kept before the current one; a partition whose every day is older is detached and dropped.
   * null keeps everything. Retiring data is a policy decision: set it here, in review, not by a flag.
   */
  retainMonths: number | null;
  purpose: string;
}

export const partitions: PartitionDecl[] = [
  {
    schema: 'public',
    table: 'attendance_records',
    column: 'date',
    partitionSchema: 'edupulse_partitions',
    premadeMonths: 3,
    retainMonths: null,
    purpose: 'the largest table, a school year at a time: a retired month is a DROP, not a DELETE (bench:partition)',
  },
];
