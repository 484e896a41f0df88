// npm run plan: the differences between the declared indexes and views and
// the live catalog. Changes nothing. Exit 0 when none, 1 when some (a drift
// check for CI).
import { command, outcome } from './lib/cli.ts';
import { withClient } from './lib/db.ts';
import { migratorTarget } from './lib/migrate-target.ts';
import { describeAction, planReconcile } from '../views/engine/index.ts';

const usage = `Usage: edupulse-db plan [--json]

Reads the live catalog (pg_index with indisvalid, pg_get_indexdef,
pg_get_viewdef, the marker comments) and prints what apply would do to make
the indexes of views/indexes.ts and the views of views/*.sql real:
  + create   ~ rebuild or replace   - drop (only what edupulse-db created)
  ! conflict (a declared name taken by an object edupulse-db did not create)
Changes nothing. Exit 0 when there is nothing to do, 1 otherwise.`;

await command({ name: 'plan', usage }, async () => {
  const actions = await withClient(migratorTarget(), (c) => planReconcile(c));
  return outcome(
    { actions: actions.map((a) => ({ kind: a.kind, description: describeAction(a) })) },
    (r) =>
      r.actions.length
        ? r.actions.map((a) => a.description).join('\n')
        : 'indexes, views and partitions are as declared; nothing to do',
    actions.length ? 1 : 0,
  );
});
