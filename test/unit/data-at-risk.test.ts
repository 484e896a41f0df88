// What a migration's SQL drops or truncates by name (migrate down's guard):
// comments and strings are not statements, constraints and defaults are not
// columns.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dropTargets } from '../../migrations/engine/data-at-risk.ts';

test('DROP TABLE lists, quoted and schema-qualified names, IF EXISTS and CASCADE', () => {
  assert.equal(dropTargets('DROP TABLE "public"."students";'), [{ table: '"public"."students"' }]);
  assert.equal(dropTargets('drop table if exists grades, "Odd ""Name""" cascade;'), [
    { table: 'grades' },
    { table: '"Odd ""Name"""' },
  ]);
});

test('TRUNCATE, ALTER TABLE ... DROP COLUMN, DROP SCHEMA ... CASCADE', () => {
  assert.equal(dropTargets('TRUNCATE TABLE ONLY attendance_records, grades RESTART IDENTITY;'), [
    { table: 'attendance_records' },
    { table: 'grades' },
  ]);
  assert.equal(dropTargets('ALTER TABLE students DROP COLUMN IF EXISTS "email", DROP nickname;'), [
    { table: 'students', column: '"email"' },
    { table: 'students', column: 'nickname' },
  ]);
  assert.equal(dropTargets('DROP SCHEMA IF EXISTS archive CASCADE;'), [{ table: '', schema: 'archive' }]);
  assert.equal(dropTargets('DROP SCHEMA IF EXISTS "edupulse_partitions";'), [], 'without CASCADE it drops no table');
});

test('not drops of data: constraints, defaults, NOT NULL, comments and string literals', () => {
  assert.equal(
    dropTargets(`ALTER TABLE students DROP CONSTRAINT students_pkey;
      ALTER TABLE students ALTER COLUMN grade_level DROP DEFAULT, ALTER COLUMN last_name DROP NOT NULL;
      -- DROP TABLE students;
      /* TRUNCATE grades; */
      SELECT 'DROP TABLE predictions';
      DROP VIEW student_risk_summary; DROP INDEX idx_students_name; DROP FUNCTION f();`),
    [],
  );
});

test.run();
