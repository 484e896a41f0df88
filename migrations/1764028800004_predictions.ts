// Risk predictions, several per student over time. ON DELETE CASCADE with the student.
import type { MigrationBuilder } from 'node-pg-migrate';

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createTable('predictions', {
    id: { type: 'serial', primaryKey: true },
    student_id: { type: 'varchar', notNull: true, references: 'students(student_id)', onDelete: 'CASCADE' },
    risk_score: { type: 'double precision', notNull: true, check: 'risk_score BETWEEN 0 AND 1' },
    risk_category: { type: 'varchar(20)', check: "risk_category IN ('low', 'medium', 'high', 'critical')" },
    confidence: { type: 'double precision', check: 'confidence BETWEEN 0 AND 1' },
    risk_factors: { type: 'jsonb' },
    model_version: { type: 'varchar(50)' },
    prediction_date: { type: 'timestamptz', notNull: true },
    created_at: { type: 'timestamptz', notNull: true, default: pgm.func('now()') },
  });
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.dropTable('predictions');
}
