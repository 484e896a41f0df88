// npm run wal:push: drain the local WAL archive into the object store.
import { command, outcome } from './lib/cli.ts';
import { backupContext } from './lib/backup/context.ts';
import { pushWal } from './lib/backup/offload.ts';
import { RemoteStore, remoteSettings } from './lib/backup/remote.ts';
import { badInput } from './lib/errors.ts';
import { resolveStack } from './lib/stack-context.ts';

const usage = `Usage: edupulse-db wal:push [--json]

Uploads every archived WAL segment and history file the object store does not
have yet, in order, four at a time, each verified (size and ETag) after upload.
With EDUPULSE_REPO_MODE=remote, a local segment is removed only once the store
holds it. Exit 1 (nothing removed) when the store cannot be reached.`;

await command({ name: 'wal:push', usage }, async ({ logger }) => {
  const settings = remoteSettings();
  if (!settings) throw badInput('needs EDUPULSE_REPO_MODE=copy or remote and EDUPULSE_S3_*');
  const ctx = backupContext(await resolveStack({ logger }));
  const store = new RemoteStore(settings);
  try {
    const r = await pushWal(ctx, store, { deleteLocal: settings.mode === 'remote' });
    return outcome(
      r,
      () =>
        `pushed ${r.pushed.length} WAL files (${r.alreadyThere} already in the store)${r.removedLocal ? `; removed ${r.removedLocal} local copies` : ''}`,
    );
  } finally {
    store.close();
  }
});
