// Probe rows for failover drills: written through the pooler by the drill's
// writers while the primary is killed, each one remembered by the writer once
// its COMMIT returned, so the new primary can be checked for every
// acknowledged commit. Kept with the drill canaries, out of the application's
// reach; a drill deletes its own rows when it is done.
import type { MigrationBuilder } from 'node-pg-migrate';

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createTable(
    { schema: 'edupulse_meta', name: 'failover_probes' },
    {
      drill_id: { type: 'text', notNull: true },
      writer: { type: 'integer', notNull: true },
      seq: { type: 'integer', notNull: true },
      committed_at: { type: 'timestamptz', notNull: true, default: pgm.func('clock_timestamp()') },
    },
    { constraints: { primaryKey: ['drill_id', 'writer', 'seq'] } },
  );
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.dropTable({ schema: 'edupulse_meta', name: 'failover_probes' });
}
