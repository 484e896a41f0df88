// Daily attendance. A student's records go with the student (ON DELETE
// CASCADE): removing a student is an erasure request, and orphaned rows would
// only skew the analytics.
import type { MigrationBuilder } from 'node-pg-migrate';

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createTable('attendance_records', {
    id: { type: 'serial', primaryKey: true },
    student_id: { type: 'varchar', notNull: true, references: 'students(student_id)', onDelete: 'CASCADE' },
    date: { type: 'date', notNull: true },
    status: {
      type: 'varchar(20)',
      notNull: true,
      check: "status IN ('present', 'absent', 'tardy', 'excused')",
    },
    period: { type: 'integer' },
    minutes_late: { type: 'integer', notNull: true, default: 0, check: 'minutes_late >= 0' },
    reason: { type: 'varchar(255)' },
    created_at: { type: 'timestamptz', notNull: true, default: pgm.func('now()') },
  });
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.dropTable('attendance_records');
}
