// Canary rows for recovery drills: written on the live server just before and
// just after a drill's target (and around named restore points), so a restored
// cluster can be checked row by row: committed at or before the target means
// present, after means absent. Kept with the migration history, out of the
// application's reach.
import type { MigrationBuilder } from 'node-pg-migrate';

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createTable(
    { schema: 'edupulse_meta', name: 'drill_canaries' },
    {
      id: { type: 'bigserial', primaryKey: true },
      drill_id: { type: 'text', notNull: true },
      side: { type: 'text', notNull: true, check: "side IN ('before', 'after')" },
      committed_at: { type: 'timestamptz', notNull: true, default: pgm.func('clock_timestamp()') },
    },
  );
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.dropTable({ schema: 'edupulse_meta', name: 'drill_canaries' });
}
