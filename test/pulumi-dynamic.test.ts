// The dynamic providers' create, diff, update and delete, called directly
// against a real throwaway cluster (the same modules the local stack runs).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { declarations } from '../roles/declarations.ts';
import { migrationsProvider, objectsProvider, type OwnerConnection } from '../infra/sql-objects.ts';
import { withClient } from '../ops-scripts/lib/db.ts';
import { migrate, migratorConfig, migrationNames } from '../migrations/engine/migrate.ts';
import { planReconcile, reconcile } from '../views/engine/index.ts';
import { readSecrets } from '../ops-scripts/lib/secrets.ts';
import { logged, startTestStack, type TestStack } from './harness.ts';

let stack: TestStack;
let connection: OwnerConnection;
const owner = () => migratorConfig(stack.pg, connection.migratorPassword);
const su = (sql: string) => withClient(stack.pg, (c) => c.query(sql));

test.before(logged(async () => {
  stack = await startTestStack();
  connection = { host: '127.0.0.1', port: stack.ctx.settings.postgres.port, database: 'edupulse',
    migratorPassword: readSecrets(stack.ctx.paths.secretsFile)!.roles[declarations.migrator]!, sslmode: 'disable' };
  // Start from a schema two migrations short and without the managed objects, as a fresh stack would be.
  await reconcile(owner(), { declared: { indexes: [], views: [] } });
  await migrate(owner(), { direction: 'down', count: 2 });
}));
test.after(async () => { await stack?.stop(); });

test('Migrations: create applies the pending migrations; a second run reports none', async () => {
  const created = await migrationsProvider.create!({ connection, migrationsHash: 'h1' });
  assert.equal(created.outs.applied, migrationNames().slice(-2));
  const again = await migrationsProvider.update!('id', created.outs, { connection, migrationsHash: 'h2' });
  assert.equal(again.outs!.applied, []);
  assert.is((await migrationsProvider.diff!('id', { connection, migrationsHash: 'h2' }, { connection, migrationsHash: 'h2' })).changes, false);
  assert.is((await migrationsProvider.diff!('id', { connection, migrationsHash: 'h2' }, { connection, migrationsHash: 'h3' })).changes, true);
});

test('IndexesAndViews: create makes the objects, diff sees a changed view, update applies it, delete removes only managed objects', async () => {
  const inputs = { connection, declarationsHash: 'd1' };
  const created = await objectsProvider.create!(inputs);
  assert.ok(created.outs.applied.length > 0);
  assert.equal(await withClient(owner(), (c) => planReconcile(c)), []);
  assert.is((await objectsProvider.diff!('id', inputs, inputs)).changes, false);
  await su("CREATE OR REPLACE VIEW student_risk_summary AS SELECT l.student_id, l.first_name, l.last_name, l.risk_score, l.risk_category FROM edupulse_derived.latest_predictions l WHERE l.risk_score > 0.9");
  assert.is((await objectsProvider.diff!('id', inputs, inputs)).changes, true, 'drift on the live catalog is a change');
  await objectsProvider.update!('id', inputs, inputs);
  assert.is((await objectsProvider.diff!('id', inputs, inputs)).changes, false);
  await su('CREATE INDEX hand_made_index ON grades (semester)');
  await objectsProvider.delete!('id', inputs);
  await withClient(stack.pg, async (c) => {
    const { rows } = await c.query(`SELECT count(*)::int AS n FROM pg_class c WHERE obj_description(c.oid, 'pg_class') LIKE 'edupulse-db managed%'`);
    assert.is(rows[0].n, 0, 'every managed index and view is gone');
    assert.is((await c.query("SELECT to_regclass('public.hand_made_index') IS NOT NULL AS ok")).rows[0].ok, true, 'a hand-made index stays');
    assert.is((await c.query("SELECT to_regclass('public.students') IS NOT NULL AS ok")).rows[0].ok, true, 'tables stay');
  });
});

test.run();
