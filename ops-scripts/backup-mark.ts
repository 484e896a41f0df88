// npm run backup:mark -- <name>: a named restore point.
import { readFileSync } from 'node:fs';
import { command, outcome } from './lib/cli.ts';
import { RemoteStore, remoteSettings } from './lib/backup/remote.ts';
import { backupContext } from './lib/backup/context.ts';
import { badInput } from './lib/errors.ts';
import { markRestorePoint, restorePointsFile } from './lib/restore/restore-points.ts';
import { resolveStack } from './lib/stack-context.ts';
import { LAYOUT } from './lib/backup/layout.ts';

const usage = `Usage: edupulse-db backup:mark <name> [--json]

Creates a named restore point (pg_create_restore_point) on the live server,
with drill canary rows committed just before and just after it, and records
its name, LSN, time and timeline in the repository's restore-points.json, so
\`restore --target-name <name>\` can pick its backup. Names are unique.`;

await command(
  { name: 'backup:mark', usage, positionals: { min: 1, max: 1, name: 'name' } },
  async ({ args, logger }) => {
    const name = args._[0];
    if (typeof name !== 'string' || args._.length !== 1) throw badInput('takes exactly one name');
    const ctx = backupContext(await resolveStack({ logger }));
    ctx.repo.ensureLayout();
    const point = await markRestorePoint(ctx.admin, ctx.repo, name);
    // With an object store, the registry goes there too: a restore from the store alone can then pick by name.
    const remote = remoteSettings();
    if (remote) {
      const store = new RemoteStore(remote);
      try {
        await store.putText(LAYOUT.restorePoints, readFileSync(restorePointsFile(ctx.repo), 'utf8'));
      } finally {
        store.close();
      }
    }
    return outcome(point, (p) => `restore point "${p.name}" at ${p.lsn} (${p.time}, timeline ${p.timeline})`);
  },
);
