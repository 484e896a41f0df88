// Students, and the trigger function that keeps updated_at current (used by
// every table that has one).
import type { MigrationBuilder } from 'node-pg-migrate';

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createFunction(
    'set_updated_at',
    [],
    { returns: 'trigger', language: 'plpgsql', replace: true },
    'BEGIN NEW.updated_at := now(); RETURN NEW; END;',
  );
  pgm.createTable('students', {
    student_id: { type: 'varchar', primaryKey: true },
    first_name: { type: 'varchar', notNull: true },
    last_name: { type: 'varchar', notNull: true },
    grade_level: { type: 'integer' },
    enrollment_date: { type: 'date' },
    date_of_birth: { type: 'date' },
    gender: { type: 'varchar(10)' },
    ethnicity: { type: 'varchar(50)' },
    special_ed_status: { type: 'boolean', default: false },
    english_learner_status: { type: 'boolean', default: false },
    socioeconomic_status: { type: 'varchar(20)' },
    created_at: { type: 'timestamptz', notNull: true, default: pgm.func('now()') },
    updated_at: { type: 'timestamptz', notNull: true, default: pgm.func('now()') },
  });
  pgm.createTrigger('students', 'students_set_updated_at', {
    when: 'BEFORE',
    operation: 'UPDATE',
    level: 'ROW',
    function: 'set_updated_at',
  });
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.dropTable('students');
  pgm.dropFunction('set_updated_at', []);
}
