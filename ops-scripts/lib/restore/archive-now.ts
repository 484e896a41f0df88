// Getting the WAL up to "just now" into the repository a restore reads: switch
// the live server's segment, wait (bounded) until the archiver has it, and,
// when the restore reads the object store, push it there and re-read the
// store's WAL listing.
import type { BackupContext } from '../backup/context.ts';
import { pushWal } from '../backup/offload.ts';
import { RemoteStore, remoteSettings } from '../backup/remote.ts';
import { withClient, type PgConfig } from '../db.ts';
import type { Catalog } from './catalog.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Switches the live server's WAL segment and waits until the archiver has archived it. */
export async function archiveUpToNow(admin: PgConfig, timeoutMs = 90_000): Promise<void> {
  const seg = await withClient(
    admin,
    async (c) => (await c.query('SELECT pg_walfile_name(pg_switch_wal()) AS seg')).rows[0].seg as string,
  );
  await waitArchived(admin, seg, timeoutMs);
}

/** Waits (bounded) until the archiver has archived segment `seg` (or a later one). */
export async function waitArchived(admin: PgConfig, seg: string, timeoutMs = 90_000): Promise<void> {
  await withClient(admin, async (c) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const a = (await c.query('SELECT last_archived_wal FROM pg_stat_archiver')).rows[0].last_archived_wal as
        string | null;
      // Only a segment counts: a backup history file (<segment>.<offset>.backup) carries the segment's name before it is archived.
      if (a && /^[0-9A-F]{24}$/.test(a) && a >= seg) return;
      if (Date.now() > deadline)
        throw new Error(`WAL segment ${seg} was not archived within ${timeoutMs / 1000}s; see status (archiver)`);
      await sleep(100);
    }
  });
}

/** After the local archive caught up: the store gets the new WAL and the catalog sees it. No-op for the local catalog, which reads on use. */
export async function syncStoreWal(ctx: BackupContext, catalog: Catalog): Promise<void> {
  const remote = remoteSettings();
  if (catalog.source !== 'remote' || !remote) return;
  const store = new RemoteStore(remote);
  try {
    await pushWal(ctx, store, { deleteLocal: remote.mode === 'remote' });
  } finally {
    store.close();
  }
  await catalog.refresh?.();
}

/** The whole step, for restore's archiveNow option. */
export const archiveNow = (ctx: BackupContext, catalog: Catalog) => async () => {
  await archiveUpToNow(ctx.admin);
  await syncStoreWal(ctx, catalog);
};
