// Grades per assignment. ON DELETE CASCADE with the student, as for attendance.
import type { MigrationBuilder } from 'node-pg-migrate';

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createTable('grades', {
    id: { type: 'serial', primaryKey: true },
    student_id: { type: 'varchar', notNull: true, references: 'students(student_id)', onDelete: 'CASCADE' },
    course_id: { type: 'varchar', notNull: true },
    assignment_id: { type: 'varchar' },
    assignment_type: { type: 'varchar(50)', check: "assignment_type IN ('homework', 'quiz', 'test', 'project')" },
    grade_value: { type: 'double precision', notNull: true },
    max_grade_value: { type: 'double precision', default: 100, check: 'max_grade_value > 0' },
    submission_date: { type: 'date' },
    semester: { type: 'varchar(20)' },
    academic_year: { type: 'varchar(10)' },
    created_at: { type: 'timestamptz', notNull: true, default: pgm.func('now()') },
  });
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.dropTable('grades');
}
