// The pure part of the reconcile engine: SQL text by exact string, and plans.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { IndexDecl, ViewDecl } from '../../views/index.ts';
import type { LiveObjects } from '../../views/engine/catalog.ts';
import { plan } from '../../views/engine/plan.ts';
import * as sql from '../../views/engine/sql.ts';

const idx: IndexDecl = {
  name: 'idx_a',
  schema: 'public',
  table: 'attendance_records',
  columns: ['date', 'student_id DESC'],
  include: ['status'],
  where: "status IN ('absent')",
  purpose: 't',
};
const view: ViewDecl = { name: 'v', schema: 'public', query: 'SELECT 1 AS one' };

test('index and view statements', () => {
  assert.is(
    sql.createIndex(idx),
    `CREATE INDEX CONCURRENTLY "idx_a" ON "public"."attendance_records" USING btree ("date", "student_id" DESC) INCLUDE ("status") WHERE status IN ('absent')`,
  );
  assert.is(
    sql.createIndex(
      { ...idx, unique: true, method: 'gin', columns: ['lower(last_name)'], include: undefined, where: undefined },
      'idx_a__new',
    ),
    'CREATE UNIQUE INDEX CONCURRENTLY "idx_a__new" ON "public"."attendance_records" USING gin ((lower(last_name)))',
  );
  assert.is(sql.createIndex.reverse(idx), 'DROP INDEX CONCURRENTLY IF EXISTS "public"."idx_a"');
  assert.is(sql.createOrReplaceView(view), 'CREATE OR REPLACE VIEW "public"."v" AS\nSELECT 1 AS one');
  assert.is(sql.createOrReplaceView.reverse(view), 'DROP VIEW IF EXISTS "public"."v"');
  assert.is(sql.commentOnView('public', 'v', "it's"), `COMMENT ON VIEW "public"."v" IS 'it''s'`);
  assert.equal(sql.parseMarker(sql.marker('abc', 'def')), { decl: 'abc', def: 'def' });
  assert.is(sql.parseMarker("someone else's comment"), undefined);
});

test('partitioned tables: the parent ON ONLY, each partition concurrently under a name that fits, then attached', () => {
  assert.is(
    sql.createIndexOnOnly(idx),
    `CREATE INDEX "idx_a" ON ONLY "public"."attendance_records" USING btree ("date", "student_id" DESC) INCLUDE ("status") WHERE status IN ('absent')`,
  );
  assert.is(
    sql.createIndex(idx, 'idx_a__p1', { schema: 'public', name: 'p1' }),
    `CREATE INDEX CONCURRENTLY "idx_a__p1" ON "public"."p1" USING btree ("date", "student_id" DESC) INCLUDE ("status") WHERE status IN ('absent')`,
  );
  assert.is(
    sql.attachIndex('public', 'idx_a', 'public', 'idx_a__p1'),
    'ALTER INDEX "public"."idx_a" ATTACH PARTITION "public"."idx_a__p1"',
  );
  assert.is(sql.dropIndexInPlace('public', 'idx_a'), 'DROP INDEX IF EXISTS "public"."idx_a"');
  assert.is(sql.partitionIndexName('idx_a', 'attendance_2026_09'), 'idx_a__attendance_2026_09');
  const long = sql.partitionIndexName('idx_attendance_issues_recent__new', 'attendance_records_2026_09_legacy');
  assert.ok(Buffer.byteLength(long) <= 63, long);
  assert.is.not(long, sql.partitionIndexName('idx_attendance_issues_recent__new', 'attendance_records_2026_10_legacy'));
});

const mine = (decl: string, def: string) => sql.marker(decl, def);
const live = (over: Partial<LiveObjects> = {}): LiveObjects => ({
  indexes: [],
  views: [],
  partitioned: [],
  today: '2026-12-06',
  ...over,
});
const kinds = (l: LiveObjects, d = { indexes: [idx], views: [view] }) => plan(d, l).map((a) => `${a.kind}:${a.reason}`);

test('plans: missing, as declared, changed by declaration, changed by hand, invalid, conflict, undeclared', () => {
  assert.equal(kinds(live()), ['create-index:missing', 'create-view:missing']);
  const ok = live({
    indexes: [
      {
        schema: 'public',
        name: 'idx_a',
        table: 'attendance_records',
        valid: true,
        fingerprint: 'F',
        comment: mine(sql.indexHash(idx), 'F'),
      },
    ],
    views: [{ schema: 'public', name: 'v', fingerprint: 'V', comment: mine(sql.viewHash(view), 'V') }],
  });
  assert.equal(kinds(ok), []);
  assert.equal(
    kinds(ok, { indexes: [{ ...idx, columns: ['date'] }], views: [{ ...view, query: 'SELECT 2 AS one' }] }),
    ['rebuild-index:declaration changed', 'replace-view:declaration changed'],
  );
  assert.equal(
    kinds({
      ...ok,
      indexes: [{ ...ok.indexes[0]!, fingerprint: 'G' }],
      views: [{ ...ok.views[0]!, fingerprint: 'W' }],
    }),
    ['rebuild-index:changed by hand', 'replace-view:changed by hand'],
  );
  assert.equal(kinds({ ...ok, indexes: [{ ...ok.indexes[0]!, valid: false, comment: null }] }), [
    'rebuild-index:invalid (left by a failed concurrent build)',
  ]);
  assert.match(kinds({ ...ok, indexes: [{ ...ok.indexes[0]!, comment: null }] })[0]!, /^conflict:/);
  assert.equal(kinds(ok, { indexes: [], views: [] }), [
    'drop-view:no longer declared',
    'drop-index:no longer declared',
  ]);
});

test('objects without our marker are never dropped; a leftover __new of a declared index is', () => {
  const l = live({
    indexes: [
      { schema: 'public', name: 'someone_elses', table: 't', valid: true, fingerprint: 'x', comment: null },
      {
        schema: 'public',
        name: 'idx_a__new',
        table: 'attendance_records',
        valid: false,
        fingerprint: 'x',
        comment: null,
      },
      { schema: 'public', name: 'other__new', table: 't', valid: false, fingerprint: 'x', comment: null },
    ],
    views: [{ schema: 'public', name: 'hand_made', fingerprint: 'x', comment: 'reporting' }],
  });
  assert.equal(
    plan({ indexes: [idx], views: [] }, l).map((a) => `${a.kind} ${'name' in a ? a.name : ''}`),
    ['drop-index idx_a__new', 'create-index '],
  );
});

test.run();
