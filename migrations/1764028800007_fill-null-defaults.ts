// Clients written against the documented DDL (created_at, updated_at and
// minutes_late nullable with a default) may send an explicit NULL for them:
// SQLAlchemy sends every mapped column that has no Python-side default. A
// DEFAULT applies only when the column is left out, so without this such an
// insert breaks on our NOT NULL. A BEFORE INSERT trigger puts the default in
// place of a NULL; the stored value stays NOT NULL. The WHEN clause keeps
// PL/pgSQL out of inserts that leave the columns out, but any BEFORE ROW
// trigger makes COPY give up its multi-row inserts (measured: 257k -> 191k
// rows/s in bench:load), so the seeder turns these off for its own load.
import type { MigrationBuilder } from 'node-pg-migrate';

/** Per table: the NOT NULL columns with a default that the documented DDL leaves nullable, and that default. */
export const FILLED: Record<string, Array<[column: string, value: string]>> = {
  students: [
    ['created_at', 'now()'],
    ['updated_at', 'now()'],
  ],
  attendance_records: [
    ['created_at', 'now()'],
    ['minutes_late', '0'],
  ],
  grades: [['created_at', 'now()']],
  discipline_incidents: [['created_at', 'now()']],
  predictions: [['created_at', 'now()']],
};

const fn = (table: string) => `${table}_fill_null_defaults`;

export async function up(pgm: MigrationBuilder): Promise<void> {
  for (const [table, columns] of Object.entries(FILLED)) {
    pgm.createFunction(
      fn(table),
      [],
      { returns: 'trigger', language: 'plpgsql', replace: true },
      `BEGIN ${columns.map(([c, v]) => `NEW.${c} := coalesce(NEW.${c}, ${v});`).join(' ')} RETURN NEW; END;`,
    );
    pgm.createTrigger(table, fn(table), {
      when: 'BEFORE',
      operation: 'INSERT',
      level: 'ROW',
      function: fn(table),
      condition: columns.map(([c]) => `NEW.${c} IS NULL`).join(' OR '),
    });
  }
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  for (const table of Object.keys(FILLED).reverse()) {
    pgm.dropTrigger(table, fn(table));
    pgm.dropFunction(fn(table), []);
  }
}
