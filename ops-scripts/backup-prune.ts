// npm run backup:prune: apply retention now.
import { command, outcome } from './lib/cli.ts';
import { refused } from './lib/errors.ts';
import { backupContext } from './lib/backup/context.ts';
import { runPrune } from './lib/backup/job.ts';
import { resolveStack } from './lib/stack-context.ts';

const usage = `Usage: edupulse-db backup:prune [--keep-physical N] [--keep-logical M] [--dry-run] [--json]

Removes the oldest backups beyond the policy (N physical, M logical; defaults
from settings) and the WAL segments older than the start of the oldest kept
physical backup. Never removes the last backup of a kind, nor WAL a kept
backup needs. --dry-run lists what would go and removes nothing.`;

await command(
  { name: 'backup:prune', usage, boolean: ['dry-run'], string: ['keep-physical', 'keep-logical'] },
  async ({ args, logger }) => {
    const stack = await resolveStack({ logger });
    const keep = {
      physical:
        args['keep-physical'] === undefined ? stack.settings.backup.keepPhysical : Number(args['keep-physical']),
      logical: args['keep-logical'] === undefined ? stack.settings.backup.keepLogical : Number(args['keep-logical']),
    };
    const r = await runPrune(backupContext(stack), keep, Boolean(args['dry-run']));
    if (r.deferred)
      throw refused(
        `the repository is being read by ${r.deferred}, which may need what retention would remove; nothing was removed`,
        'run again when it has finished (the next backup also applies retention)',
      );
    const verb = r.dryRun ? 'would remove' : 'removed';
    return outcome(r, () =>
      r.removed.length || r.walRemoved.length
        ? [
            ...r.removed.map((x) => `${verb} ${x.kind} backup ${x.id}`),
            `${verb} ${r.walRemoved.length} WAL files`,
          ].join('\n')
        : 'nothing to prune',
    );
  },
);
