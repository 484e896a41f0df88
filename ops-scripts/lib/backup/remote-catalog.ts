// The store's own catalog: backups are listed only with backup.json (uploaded
// last); verified against objects.json (sizes and ETags recorded at upload)
// and the WAL listing; retention applied with the same plan as locally.
import type { RemoteStore } from './remote.ts';
import { BACKUP_KINDS, RECORD_FILE, type BackupRecord } from './repository.ts';
import { OBJECTS_FILE } from './offload.ts';
import { chainProblems } from './incremental.ts';
import { retentionPlan, type Keep, type PruneResult } from './prune.ts';
import { describeStoreMarkers, holdPruning, liveStoreReaders } from './store-readers.ts';
import type { VerifyResult } from './verify.ts';
import { checkArchive, HISTORY_RE, parseHistory, parseSegment, type HistoryEntry } from './wal.ts';
import { backupPath, LAYOUT, walFileOf, walIndex, walPath } from './layout.ts';

export interface RemoteListing {
  records: BackupRecord[];
  objects: Map<string, { bytes: number; modified: string }>;
  /** The WAL file names the store holds (sorted)... */
  walFiles: string[];
  /** ...and the stored name (key under wal/) of each: compressed or, from before compression, plain. */
  walStored: Map<string, string>;
}

export async function readRemote(store: RemoteStore): Promise<RemoteListing> {
  const objects = await store.listDetailed('');
  const records: BackupRecord[] = [];
  for (const key of objects.keys()) {
    if (
      !BACKUP_KINDS.some(
        (k) =>
          key.startsWith(`${LAYOUT.kinds[k]}/`) && key.endsWith(`/${LAYOUT.record}`) && key.split('/').length === 3,
      )
    )
      continue;
    const text = await store.getText(key);
    if (text) records.push(JSON.parse(text) as BackupRecord);
  }
  records.sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
  const walStored = walIndex([...objects.keys()].map(walFileOf).filter((f): f is string => Boolean(f)));
  return { records, objects, walFiles: [...walStored.keys()].sort(), walStored };
}

export async function remoteHistories(store: RemoteStore, walFiles: string[]): Promise<Map<number, HistoryEntry[]>> {
  const out = new Map<number, HistoryEntry[]>();
  for (const f of walFiles) {
    const m = HISTORY_RE.exec(f);
    if (m) out.set(parseInt(m[1]!, 16), parseHistory((await store.getText(walPath(f))) ?? ''));
  }
  return out;
}

export async function verifyRemote(store: RemoteStore, r: BackupRecord, listing: RemoteListing): Promise<VerifyResult> {
  const problems: string[] = [];
  const dir = backupPath(r.kind, r.id);
  const uploaded = JSON.parse((await store.getText(`${dir}/${OBJECTS_FILE}`)) ?? '{}') as Record<
    string,
    { bytes: number; etag: string }
  >;
  for (const f of r.files) {
    const head = await store.head(`${dir}/${f.name}`);
    if (!head) {
      problems.push(`${f.name} is missing from the store`);
      continue;
    }
    if (head.bytes !== f.bytes) problems.push(`${f.name} has ${head.bytes} bytes in the store, ${f.bytes} recorded`);
    else if (uploaded[f.name] && head.etag.replace(/"/g, '') !== uploaded[f.name]!.etag)
      problems.push(`${f.name} changed in the store since it was uploaded (ETag)`);
  }
  let newestWal: string | undefined;
  if (r.physical) {
    problems.push(...chainProblems(listing.records, r));
    const seg = r.server.walSegmentBytes;
    const archive = checkArchive(
      listing.walFiles,
      await remoteHistories(store, listing.walFiles),
      parseSegment(r.physical.startSegment, seg)!,
      seg,
    );
    newestWal = archive.newest?.name;
    if (archive.missing.length)
      problems.push(
        `the store's WAL has a gap after ${newestWal ?? r.physical.startSegment}: missing ${archive.missing.slice(0, 5).join(', ')}`,
      );
  }
  return { id: r.id, kind: r.kind, ok: problems.length === 0, problems, newestWal };
}

/**
 * Retention on the store, planned from the store's own catalog; deferred while a reader leases the store. It marks
 * itself at work before it looks for leases (store-readers.ts). backup.json goes first, so nothing half-removed is
 * listed.
 */
export async function pruneRemote(
  store: RemoteStore,
  keep: Keep,
  dryRun = false,
): Promise<Omit<PruneResult, 'dryRun'>> {
  const listing = await readRemote(store);
  const plan = retentionPlan(listing.records, listing.walFiles, keep);
  if (dryRun || (!plan.removed.length && !plan.walRemoved.length)) return plan;
  const release = await holdPruning(store);
  try {
    // A restore or drill reading the store, on any host, may need what the plan removes: the next run removes it.
    const readers = await liveStoreReaders(store);
    if (readers.length) return { removed: [], walRemoved: [], deferred: describeStoreMarkers(readers) };
    const prefixes = plan.removed.map((r) => `${backupPath(r.kind, r.id)}/`);
    const keys = [...listing.objects.keys()].filter((k) => prefixes.some((p) => k.startsWith(p)));
    await store.remove(keys.filter((k) => k.endsWith(`/${RECORD_FILE}`)));
    await store.remove([
      ...keys.filter((k) => !k.endsWith(`/${RECORD_FILE}`)),
      ...plan.walRemoved.map((f) => walPath(listing.walStored.get(f) ?? f)),
    ]);
    return plan;
  } finally {
    await release();
  }
}
