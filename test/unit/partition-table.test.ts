// The online conversion's SQL (migrations/engine/partition-table.ts) by exact
// string where it is short; the swap itself is proven on a real server
// (test/integration/partition-attendance.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ATTENDANCE } from '../../migrations/1764028800011_partition-attendance.ts';
import {
  addBound,
  boundConstraint,
  createKeyIndex,
  dropPartitionSchema,
  keyIndex,
  swapIn,
  unpartition,
  withLockRetries,
} from '../../migrations/engine/partition-table.ts';

test('names and the key index built beside the table', () => {
  assert.is(boundConstraint(ATTENDANCE), 'attendance_records_partition_bound');
  assert.is(keyIndex(ATTENDANCE), 'attendance_records_partition_key');
  assert.is(
    createKeyIndex(ATTENDANCE),
    'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "attendance_records_partition_key" ON "public"."attendance_records" ("id", "date")',
  );
});

test('every step retries its locks under a short lock_timeout, and a done step returns early', () => {
  assert.is(
    withLockRetries('  n int;', '  IF false THEN RETURN; END IF;', '      PERFORM 1;', '200ms', 3),
    `DO $partition$
DECLARE
  attempt int := 0;
  n int;
BEGIN
  IF false THEN RETURN; END IF;
  PERFORM set_config('lock_timeout', '200ms', true);
  LOOP
    attempt := attempt + 1;
    BEGIN
      PERFORM 1;
      EXIT;
    EXCEPTION WHEN lock_not_available THEN
      IF attempt >= 3 THEN RAISE; END IF;
      PERFORM pg_sleep(0.5);
    END;
  END LOOP;
END
$partition$`,
  );
  for (const step of [addBound(ATTENDANCE), swapIn(ATTENDANCE)])
    assert.ok(
      step.includes(
        `IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('"public"."attendance_records"')) IS DISTINCT FROM 'r' THEN RETURN; END IF;`,
      ),
    );
  assert.ok(addBound(ATTENDANCE).includes(`CHECK ("date" < %L::date) NOT VALID', v_bound)`));
  assert.ok(unpartition(ATTENDANCE).includes(`IS DISTINCT FROM 'p' THEN RETURN; END IF;`));
  assert.ok(
    swapIn(ATTENDANCE).includes(
      `CREATE TABLE "edupulse_partitions"."attendance_records_default" PARTITION OF "public"."attendance_records" DEFAULT;`,
    ),
  );
});

test('the partitions schema goes only when empty', () => {
  assert.is(
    dropPartitionSchema(ATTENDANCE),
    `DO $partition$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = to_regnamespace('edupulse_partitions')) THEN
    DROP SCHEMA IF EXISTS "edupulse_partitions";
  END IF;
END $partition$`,
  );
});

test.run();
