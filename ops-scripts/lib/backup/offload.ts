// Offloading to the object store: finished backups (files, then a listing of
// the uploaded objects, then backup.json last, so a half-uploaded backup is
// never listed remotely either) and archived WAL, pushed in order. In remote
// mode the local copy goes only once the store has it.
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../files.ts';
import type { BackupContext } from './context.ts';
import type { RemoteStore } from './remote.ts';
import { RECORD_FILE, type BackupRecord } from './repository.ts';
import { SEGMENT_RE, HISTORY_RE } from './wal.ts';
import { backupPath, LAYOUT, walNameOf, walPath } from './layout.ts';

export const OFFLOADED_FILE = 'offloaded.json';
export const OBJECTS_FILE = 'objects.json';

export const isOffloaded = (ctx: BackupContext, r: BackupRecord) =>
  existsSync(join(ctx.repo.backupDir(r.kind, r.id), OFFLOADED_FILE));

export async function offloadBackup(ctx: BackupContext, store: RemoteStore, r: BackupRecord): Promise<void> {
  const dir = ctx.repo.backupDir(r.kind, r.id);
  const objects: Record<string, { bytes: number; etag: string }> = {};
  for (const f of r.files) {
    const up = await store.upload(join(dir, f.name), `${backupPath(r.kind, r.id)}/${f.name}`);
    objects[f.name] = { bytes: up.bytes, etag: up.etag };
  }
  await store.putText(`${backupPath(r.kind, r.id)}/${OBJECTS_FILE}`, JSON.stringify(objects));
  await store.putText(`${backupPath(r.kind, r.id)}/${RECORD_FILE}`, readFileSync(join(dir, RECORD_FILE), 'utf8'));
  writeFileAtomic(join(dir, OFFLOADED_FILE), JSON.stringify({ at: new Date().toISOString(), objects }, null, 2), {
    mode: 0o600,
    owner: ctx.repo.owner,
  });
}

export interface WalPushResult {
  pushed: string[];
  alreadyThere: number;
  removedLocal: number;
}

/** Pushes archived segments (and history files) the store lacks, in order, a few at a time. */
export async function pushWal(
  ctx: BackupContext,
  store: RemoteStore,
  opts: { deleteLocal: boolean; concurrency?: number },
): Promise<WalPushResult> {
  // Stored names (<segment>.zst, or plain from before compression) are pushed as they are: the store holds the same form.
  const local = [...ctx.repo.walIndex()]
    .filter(([name]) => SEGMENT_RE.test(name) || HISTORY_RE.test(name) || /^[0-9A-F]{24}\.partial$/.test(name))
    .map(([, stored]) => stored)
    .sort();
  const remote = await store.list(walPath(''));
  const missing = local.filter((f) => !remote.has(walPath(f)));
  const pushed: string[] = [];
  const width = opts.concurrency ?? 4;
  for (let i = 0; i < missing.length; i += width) {
    const batch = missing.slice(i, i + width);
    await Promise.all(batch.map((f) => store.upload(join(ctx.repo.walDir, f), walPath(f))));
    pushed.push(...batch);
  }
  // When each file was archived (its local mtime), for restores that find a time target in the store's WAL.
  if (pushed.length) {
    const times = JSON.parse((await store.getText(LAYOUT.walTimes)) ?? '{}') as Record<string, string>;
    for (const f of local) {
      const name = walNameOf(f);
      if (!times[name]) times[name] = statSync(join(ctx.repo.walDir, f)).mtime.toISOString();
    }
    await store.putText(LAYOUT.walTimes, JSON.stringify(times));
  }
  let removedLocal = 0;
  if (opts.deleteLocal) {
    // Only what the store now holds; history files stay (they are small and restores read them).
    for (const f of local)
      if (SEGMENT_RE.test(walNameOf(f)) && (remote.has(walPath(f)) || pushed.includes(f))) {
        rmSync(join(ctx.repo.walDir, f));
        removedLocal++;
      }
  }
  return { pushed, alreadyThere: local.length - missing.length, removedLocal };
}

export interface OffloadResult {
  ok: boolean;
  offloaded: string[];
  wal?: WalPushResult;
  error?: string;
  /** Set when the store's retention waited for a restore or drill reading the store (on any host). */
  retentionDeferred?: string;
}

/** Every local backup not yet offloaded (oldest first), then the WAL. Failures are reported, not thrown: the backups stay complete locally. */
export async function offloadAll(
  ctx: BackupContext,
  store: RemoteStore,
  mode: 'copy' | 'remote',
): Promise<OffloadResult> {
  const offloaded: string[] = [];
  try {
    for (const r of ctx.repo.list().filter((x) => !isOffloaded(ctx, x))) {
      await offloadBackup(ctx, store, r);
      offloaded.push(`${r.kind}/${r.id}`);
      if (mode === 'remote') rmSync(ctx.repo.backupDir(r.kind, r.id), { recursive: true, force: true });
    }
    const wal = await pushWal(ctx, store, { deleteLocal: mode === 'remote' });
    return { ok: true, offloaded, wal };
  } catch (err) {
    return { ok: false, offloaded, error: (err as Error).message };
  }
}
