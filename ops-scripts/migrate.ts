// npm run migrate -- up|down|redo|status [N|all]
import { command, outcome } from './lib/cli.ts';
import { withClient } from './lib/db.ts';
import { badInput, refused } from './lib/errors.ts';
import { dataAtRisk, dropTargets } from '../migrations/engine/data-at-risk.ts';
import { appliedMigrations, migrate, migrationNames } from '../migrations/engine/migrate.ts';
import { migratorTarget } from './lib/migrate-target.ts';

const usage = `Usage: edupulse-db migrate <up|down|redo|status> [N|all] [--dry-run] [--json]

Runs the migrations in migrations/ with node-pg-migrate, as the migrator login
with role edupulse_owner, holding node-pg-migrate's advisory lock, all in one
transaction, with lock_timeout (EDUPULSE_MIGRATE_LOCK_TIMEOUT, default 5s).

  up [N|all]     apply pending migrations (default all)
  down [N|all]   revert the last N (default 1)
  redo [N]       revert the last N (default 1) and apply them again
  status         list migrations, applied or pending
  --dry-run      print the SQL, change nothing (up and down)
  --force        down and redo: revert even when that destroys data

A down or redo whose SQL drops or truncates a table, or drops a column, that
holds rows now (in the data schemas; the derived tables are rebuilt) is
refused (exit 3) naming them, with nothing changed: take a logical backup
first, then add --force.`;

function parseCount(raw: unknown, fallback: number): number {
  if (raw === undefined) return fallback;
  if (raw === 'all') return Infinity;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw badInput(`"${String(raw)}" is not a count`, 'give a positive whole number or "all"');
  return n;
}

await command(
  { name: 'migrate', usage, boolean: ['dry-run', 'force'], positionals: { max: 2, name: 'argument' } },
  async ({ args, logger }) => {
    const [action, countArg] = args._;
    const config = migratorTarget();
    const dryRun = Boolean(args['dry-run']);
    const report = (ran: Array<{ name: string; direction: string; sql?: string }>) =>
      outcome({ ran, dryRun }, () =>
        !ran.length
          ? 'nothing to migrate'
          : dryRun
            ? ran.map((m) => `-- ${m.direction} ${m.name} (dry run: not applied)\n${m.sql ?? ''}`).join('\n\n')
            : ran.map((m) => `${m.direction.padEnd(5)} ${m.name}`).join('\n'),
      );
    if (args.force && !['down', 'redo'].includes(String(action))) throw badInput('--force goes only with down or redo');
    // A redo's up depends on its down having run: there is no dry run of both (it ran them for real).
    if (dryRun && action === 'redo')
      throw badInput(
        '--dry-run goes with up and down, not redo',
        'see what a redo reverts with: migrate down N --dry-run',
      );
    /** Refused (exit 3) when reverting the last `count` would destroy data, unless --force; read from a dry run. */
    const guardDown = async (count: number) => {
      if (args.force || dryRun) return;
      const planned = await migrate(config, { direction: 'down', count, dryRun: true });
      const risk = await withClient(config, (c) =>
        dataAtRisk(
          c,
          planned.flatMap((m) => dropTargets(m.sql ?? '')),
        ),
      );
      if (risk.length)
        throw refused(
          `reverting ${planned.map((m) => m.name).join(', ')} would destroy data: ${risk.join('; ')}. Nothing was changed`,
          'take a logical backup first (npm run backup -- --type logical), then run again with --force; --dry-run shows the SQL',
        );
    };
    switch (action) {
      case 'up':
        return report(
          await migrate(config, { direction: 'up', count: parseCount(countArg, Infinity), logger, dryRun }),
        );
      case 'down': {
        const count = parseCount(countArg, 1);
        await guardDown(count);
        return report(await migrate(config, { direction: 'down', count, logger, dryRun }));
      }
      case 'redo': {
        const count = parseCount(countArg, 1);
        await guardDown(count);
        const down = await migrate(config, { direction: 'down', count, logger });
        return report([...down, ...(await migrate(config, { direction: 'up', count: down.length, logger }))]);
      }
      case 'status': {
        const applied = new Set(await appliedMigrations(config));
        const rows = migrationNames().map((name) => ({ name, applied: applied.has(name) }));
        return outcome({ migrations: rows }, () =>
          rows.map((r) => `${r.applied ? 'applied' : 'pending'}  ${r.name}`).join('\n'),
        );
      }
      default:
        throw badInput(`unknown action "${String(action ?? '')}"`, 'use up, down, redo or status');
    }
  },
);
