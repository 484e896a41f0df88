// Discipline incidents, severity 1 (minor) to 5. ON DELETE CASCADE with the student.
import type { MigrationBuilder } from 'node-pg-migrate';

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createTable('discipline_incidents', {
    id: { type: 'serial', primaryKey: true },
    student_id: { type: 'varchar', notNull: true, references: 'students(student_id)', onDelete: 'CASCADE' },
    incident_date: { type: 'date', notNull: true },
    incident_type: { type: 'varchar(50)' },
    severity_level: { type: 'integer', check: 'severity_level BETWEEN 1 AND 5' },
    description: { type: 'text' },
    action_taken: { type: 'varchar(255)' },
    reported_by: { type: 'varchar(100)' },
    created_at: { type: 'timestamptz', notNull: true, default: pgm.func('now()') },
  });
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.dropTable('discipline_incidents');
}
