// npm run backup:list: every backup with kind, age, size, status and, for
// physical backups, the recoverable window.
import { command, outcome } from './lib/cli.ts';
import { backupContext } from './lib/backup/context.ts';
import { listBackups } from './lib/backup/list.ts';
import { RemoteStore, remoteSettings } from './lib/backup/remote.ts';
import { readRemote } from './lib/backup/remote-catalog.ts';
import { badInput } from './lib/errors.ts';
import { age, bytes, table } from './lib/format.ts';
import { resolveStack } from './lib/stack-context.ts';

const usage = `Usage: edupulse-db backup:list [--remote] [--json]

Lists every complete backup (a directory without backup.json is not one): id,
kind, age, stored size, status, verification, and for physical backups the
recoverable window, from the end of the backup to the newest WAL segment in
the archive reachable without a gap. With a store configured, a backup not yet
uploaded shows NOT OFFLOADED; --remote lists the store's own catalog.`;

await command({ name: 'backup:list', usage, boolean: ['remote'] }, async ({ args, logger }) => {
  const ctx = backupContext(await resolveStack({ logger }));
  const remote = remoteSettings();
  if (args.remote) {
    if (!remote) throw badInput('--remote needs EDUPULSE_REPO_MODE=copy or remote and EDUPULSE_S3_*');
    const store = new RemoteStore(remote);
    try {
      const { records } = await readRemote(store);
      return outcome({ backups: records }, () =>
        records.length
          ? table([
              ['ID', 'KIND', 'AGE', 'SIZE', 'WHERE'],
              ...records.map((r) => [
                r.id,
                r.kind,
                age(r.finishedAt),
                bytes(r.sizes.storedBytes),
                `${remote.bucket}/${remote.prefix}`,
              ]),
            ])
          : 'no backups in the store',
      );
    } finally {
      store.close();
    }
  }
  return outcome(listBackups(ctx, Boolean(remote)), ({ backups, unfinished }) =>
    [
      backups.length
        ? table([
            ['ID', 'KIND', 'AGE', 'SIZE', 'STATUS', 'VERIFIED', 'RECOVERABLE WINDOW'],
            ...backups.map((r) => [
              r.id,
              r.kind,
              age(r.finishedAt),
              bytes(r.sizes.storedBytes),
              r.offloaded === false ? 'complete, NOT OFFLOADED' : r.status,
              r.verification.ok ? r.verification.tool : 'FAILED',
              r.recoverable ? `${r.recoverable.from} .. ${r.recoverable.to}` : '-',
            ]),
          ])
        : 'no backups',
      ...(unfinished.length
        ? [
            `(${unfinished.length} unfinished director${unfinished.length > 1 ? 'ies' : 'y'}, not backups; the next backup run removes them)`,
          ]
        : []),
    ].join('\n'),
  );
});
