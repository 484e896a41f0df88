// The reconcile engine's monthly partitions: which months it makes and
// retires from the live partitions and the server's date, and their SQL.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { PartitionDecl } from '../../views/index.ts';
import {
  addMonths,
  monthsBetween,
  createPartition,
  parseBound,
  planPartitions,
  retirePartition,
  type LivePartitioned,
  type PartitionAction,
} from '../../views/engine/partitions.ts';
import { ToolkitError } from '../../ops-scripts/lib/errors.ts';

const decl: PartitionDecl = {
  schema: 'public',
  table: 'attendance_records',
  column: 'date',
  partitionSchema: 'edupulse_partitions',
  premadeMonths: 3,
  retainMonths: null,
  purpose: 't',
};
const P = 'edupulse_partitions';
/** As migration 011 leaves it on 2026-12-06: the old table up to February, and the default partition. */
const converted = (over: Partial<LivePartitioned> = {}): LivePartitioned => ({
  schema: 'public',
  table: 'attendance_records',
  partitioned: true,
  partitions: [
    { schema: P, name: 'attendance_records_before_2027_02', from: null, to: '2027-02-01', isDefault: false },
    { schema: P, name: 'attendance_records_default', isDefault: true },
  ],
  defaultMonths: [],
  ...over,
});
const brief = (as: PartitionAction[]) =>
  as.map((a) =>
    a.kind === 'create-partition'
      ? `+ ${a.name} ${a.from}..${a.to}${a.defaultPartition ? ' (moved)' : ''}`
      : a.kind === 'retire-partition'
        ? `- ${a.name}`
        : `! ${a.reason}`,
  );

test('month arithmetic and bounds as PostgreSQL prints them', () => {
  assert.is(addMonths('2026-12-06', 0), '2026-12-01');
  assert.is(addMonths('2026-12-31', 1), '2027-01-01');
  assert.is(addMonths('2027-01-15', -13), '2025-12-01');
  assert.is(monthsBetween('2026-12-06', '2027-04-01'), 4);
  assert.is(monthsBetween('2026-12-06', '2026-12-01'), 0);
  assert.is(monthsBetween('2027-01-31', '2026-11-01'), -2);
  assert.equal(parseBound("FOR VALUES FROM ('2027-02-01') TO ('2027-03-01')"), {
    from: '2027-02-01',
    to: '2027-03-01',
  });
  assert.equal(parseBound("FOR VALUES FROM (MINVALUE) TO ('2027-02-01')"), { from: null, to: '2027-02-01' });
  assert.is(parseBound('DEFAULT'), 'default');
  assert.is(parseBound('FOR VALUES IN (1)'), undefined);
});

test('the current month and the premade ones are made where no partition covers them', () => {
  assert.equal(brief(planPartitions(decl, converted(), '2026-12-06')), [
    '+ attendance_records_2027_02 2027-02-01..2027-03-01',
    '+ attendance_records_2027_03 2027-03-01..2027-04-01',
  ]);
  const made = converted();
  made.partitions.push(
    { schema: P, name: 'attendance_records_2027_02', from: '2027-02-01', to: '2027-03-01', isDefault: false },
    { schema: P, name: 'attendance_records_2027_03', from: '2027-03-01', to: '2027-04-01', isDefault: false },
  );
  assert.equal(planPartitions(decl, made, '2026-12-06'), [], 'nothing left to do: apply is idempotent');
  assert.equal(brief(planPartitions(decl, made, '2027-01-20')), [
    '+ attendance_records_2027_04 2027-04-01..2027-05-01',
  ]);
});

test('a month with rows waiting in the default partition is made, and they are moved in', () => {
  assert.equal(brief(planPartitions(decl, converted({ defaultMonths: ['2030-01-01'] }), '2026-12-06')), [
    '+ attendance_records_2027_02 2027-02-01..2027-03-01',
    '+ attendance_records_2027_03 2027-03-01..2027-04-01',
    '+ attendance_records_2030_01 2030-01-01..2030-02-01 (moved)',
  ]);
});

test('retention retires whole partitions older than it, the first one included, never a later one', () => {
  const live = converted();
  live.partitions.push(
    { schema: P, name: 'attendance_records_2027_02', from: '2027-02-01', to: '2027-03-01', isDefault: false },
    { schema: P, name: 'attendance_records_2027_03', from: '2027-03-01', to: '2027-04-01', isDefault: false },
  );
  const year = { ...decl, retainMonths: 12, premadeMonths: 0 };
  assert.equal(brief(planPartitions(year, live, '2028-02-10')), [
    '+ attendance_records_2028_02 2028-02-01..2028-03-01',
    '- attendance_records_before_2027_02',
  ]);
  assert.equal(brief(planPartitions(year, live, '2028-03-01')).slice(1), [
    '- attendance_records_before_2027_02',
    '- attendance_records_2027_02',
  ]);
  assert.equal(brief(planPartitions({ ...year, retainMonths: null }, live, '2040-01-01')), [
    '+ attendance_records_2040_01 2040-01-01..2040-02-01',
  ]);
});

test('a month covered in part is a conflict; a table not partitioned is left to its migration', () => {
  const odd = converted();
  odd.partitions.push({ schema: P, name: 'mid', from: '2027-02-15', to: '2027-03-15', isDefault: false });
  assert.match(
    brief(planPartitions(decl, odd, '2026-12-06')).join('\n'),
    /edupulse_partitions\.mid cover 2027-02 only in part/,
  );
  assert.equal(planPartitions(decl, { ...converted(), partitioned: false }, '2026-12-06'), []);
  assert.equal(planPartitions(decl, undefined, '2026-12-06'), []);
});

test('a retention short enough to reach the attendance counts, or a bad premade count, is bad input', () => {
  for (const bad of [{ retainMonths: 1 }, { retainMonths: 2.5 }, { premadeMonths: -1 }, { premadeMonths: 99 }]) {
    try {
      planPartitions({ ...decl, ...bad }, converted(), '2026-12-06');
      assert.unreachable(JSON.stringify(bad));
    } catch (err) {
      assert.instance(err, ToolkitError);
      assert.is((err as ToolkitError).exitCode, 2);
    }
  }
});

test('partition SQL: made beside, rows moved from the default partition, attached; retired by detach and drop', () => {
  const [a] = planPartitions(decl, converted({ defaultMonths: ['2027-02-01'] }), '2026-12-06');
  assert.equal(createPartition(a as Extract<PartitionAction, { kind: 'create-partition' }>), [
    'LOCK TABLE "edupulse_partitions"."attendance_records_default" IN ACCESS EXCLUSIVE MODE',
    'CREATE TABLE "edupulse_partitions"."attendance_records_2027_02" (LIKE "public"."attendance_records" INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)',
    `WITH moved AS (DELETE FROM "edupulse_partitions"."attendance_records_default" WHERE "date" >= '2027-02-01' AND "date" < '2027-03-01' RETURNING *)
INSERT INTO "edupulse_partitions"."attendance_records_2027_02" SELECT * FROM moved`,
    `ALTER TABLE "public"."attendance_records" ATTACH PARTITION "edupulse_partitions"."attendance_records_2027_02" FOR VALUES FROM ('2027-02-01') TO ('2027-03-01')`,
  ]);
  assert.equal(
    retirePartition({ kind: 'retire-partition', decl, schema: P, name: 'attendance_records_2027_02', reason: '' }),
    [
      'ALTER TABLE "public"."attendance_records" DETACH PARTITION "edupulse_partitions"."attendance_records_2027_02"',
      'DROP TABLE "edupulse_partitions"."attendance_records_2027_02"',
    ],
  );
});

test.run();
