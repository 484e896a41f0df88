// Configuration for node-pg-migrate's own CLI, so it runs exactly as
// `npm run migrate` does (same table, schema, directory, role and lock_timeout):
//   npx node-pg-migrate up --config-file pgmigrate.config.ts
import { MIGRATIONS_DIR, MIGRATIONS_SCHEMA, MIGRATIONS_TABLE } from './migrations/engine/migrate.ts';
import { migratorTarget } from './ops-scripts/lib/migrate-target.ts';

export default {
  url: migratorTarget(),
  'migrations-dir': MIGRATIONS_DIR,
  'migrations-table': MIGRATIONS_TABLE,
  'migrations-schema': MIGRATIONS_SCHEMA,
  'create-migrations-schema': true,
  'migration-file-language': 'ts',
  'check-order': true,
  'single-transaction': true,
};
