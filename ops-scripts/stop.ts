// edupulse-db stop <dir>: stop a cluster a restore or a kept drill left running.
import { command, outcome } from './lib/cli.ts';
import { stopScratch } from './lib/restore/scratch-clusters.ts';
import { statePaths } from './lib/state.ts';

const usage = `Usage: edupulse-db stop <data dir> [--remove] [--json]

Stops a cluster that \`restore --start\` or \`drill --keep\` left running (fast
shutdown), as the data directory's owner: as root pg_ctl refuses to run, and
the cluster runs as the service user. With --remove, also deletes it (only a
directory a restore or a drill made). The live cluster is refused (exit 3):
\`down\` stops the stack. \`status\` lists the kept drill clusters.`;

await command(
  { name: 'stop', usage, boolean: ['remove'], positionals: { min: 1, max: 1, name: 'data directory' } },
  async ({ args, logger }) => {
    const dir = args._[0]!;
    const r = await stopScratch(dir, { liveDataDir: statePaths().dataDir, remove: Boolean(args.remove), logger });
    return outcome(
      { dataDir: dir, ...r },
      () => `${dir}: ${r.stopped ? 'stopped' : 'was not running'}${r.removed ? ', removed' : ''}`,
    );
  },
);
