// Restores and drills reading the object store, seen by retention on every
// host. A marker in a local repository (./readers.ts) guards that repository
// only; a restore from the store on another host (a new host in a disaster,
// a drill elsewhere) was not seen, and the nightly backup's retention could
// remove the backup or the WAL it was reading. Each reader of the store keeps
// a lease there, readers/<host>-<pid>.json, written again every minute while
// it runs and removed when it ends. Retention on the store defers while a
// lease is fresh (its LastModified within LEASE_SECONDS), so a reader that
// died without removing its lease holds retention back five minutes at most;
// hosts' clocks may differ from the store's by as much without harm.
//
// The store has no lock, so each side writes its own marker before it looks
// for the other's: retention writes pruners/<host>-<pid>.json, then looks for
// leases; a reader writes its lease, then looks for pruners, waits while one
// is at work, and reads the store's catalog again after. Whichever writes
// second sees the first: retention that saw no lease was seen, in turn, by
// the reader, who waited for it and read what it left; a reader that leased
// before retention looked is seen and retention defers. (The catalog a reader
// read before it leased, to check its input, may predate a retention run
// that ended before the lease: hence the second read.)
import { hostname } from 'node:os';
import { describeError } from '../errors.ts';
import { onInterrupt } from '../interrupt.ts';
import type { Logger } from '../logger.ts';
import { LAYOUT } from './layout.ts';
import type { RemoteStore } from './remote.ts';

/** A lease not written again for this long is a reader that died. */
export const LEASE_SECONDS = 300;
/** How often a reader writes its lease again. */
const RENEW_MS = 60_000;

export interface StoreMarker {
  host: string;
  pid: number;
  job: string;
  startedAt: string;
}

/** How often a reader waiting for retention on the store looks again. */
const WAIT_MS = 250;

/** Keeps `key` in the store, written again every RENEW_MS, until the returned release (or an interruption). */
async function holdMarker(store: RemoteStore, key: string, body: object): Promise<() => Promise<void>> {
  const write = () => store.putText(key, JSON.stringify(body));
  await write();
  // A renewal still in flight is waited for before the removal, or it could put the marker back after it.
  let renewing: Promise<void> = Promise.resolve();
  const timer = setInterval(() => void (renewing = write().catch(() => {})), RENEW_MS);
  timer.unref();
  let released: Promise<void> | undefined;
  const release = () => {
    clearInterval(timer);
    return (released ??= renewing.then(() => store.remove([key])).catch(() => {}));
  };
  const forget = onInterrupt(release);
  return async () => {
    forget();
    await release();
  };
}

const marker = (job: string): StoreMarker => ({
  host: hostname(),
  pid: process.pid,
  job,
  startedAt: new Date().toISOString(),
});
const markerKey = (dir: string, m: StoreMarker) => `${dir}/${m.host}-${m.pid}.json`;

/** A reader's lease of the store: its release, and the retention it waited for before it could read, if any. */
export interface StoreLease {
  release: () => Promise<void>;
  waited?: { for: string; seconds: number };
}

/**
 * Leases the store for `job` until its release (or an interruption); returns once no retention is at work on the
 * store (the reader then reads the catalog again: see above). A store this process cannot write to (read-only
 * credentials) cannot be pruned by it either: the read goes on unguarded, with a warning.
 */
export async function leaseStore(store: RemoteStore, job: string, logger: Logger): Promise<StoreLease> {
  const reader = marker(job);
  let release: () => Promise<void>;
  try {
    release = await holdMarker(store, markerKey(LAYOUT.readers, reader), reader);
  } catch (err) {
    logger.log({
      event: 'warn',
      message: `could not leave a reader's lease in the object store (${describeError(err)}): retention on another host does not see this ${job}`,
    });
    return { release: async () => {} };
  }
  try {
    const t0 = performance.now();
    let waitedFor: string | undefined;
    for (let pruners = await liveMarkers(store, LAYOUT.pruners); pruners.length;) {
      if (!waitedFor)
        logger.log({
          event: 'warn',
          message: `retention is at work on the object store (${describeStoreMarkers(pruners)}): this ${job} waits for it to end, then reads the store again`,
        });
      waitedFor ??= describeStoreMarkers(pruners);
      await new Promise((res) => setTimeout(res, WAIT_MS));
      pruners = await liveMarkers(store, LAYOUT.pruners);
    }
    return {
      release,
      ...(waitedFor ? { waited: { for: waitedFor, seconds: (performance.now() - t0) / 1000 } } : {}),
    };
  } catch (err) {
    await release();
    throw err;
  }
}

/** Marks retention at work on the store (before it looks for readers) until the returned release. A reader that leases meanwhile waits for it. */
export async function holdPruning(store: RemoteStore): Promise<() => Promise<void>> {
  const pruner = marker('retention');
  return holdMarker(store, markerKey(LAYOUT.pruners, pruner), pruner);
}

/** Leases (key: LastModified) written within LEASE_SECONDS of `now` are fresh, older ones stale: pure. */
export function splitLeases(leases: Map<string, string>, now: number): { fresh: string[]; stale: string[] } {
  // A store whose clock runs ahead of this host's: its newest LastModified is the present.
  const present = Math.max(now, ...[...leases.values()].map((m) => Date.parse(m)));
  const fresh: string[] = [];
  const stale: string[] = [];
  for (const [key, modified] of leases)
    (present - Date.parse(modified) > LEASE_SECONDS * 1000 ? stale : fresh).push(key);
  return { fresh, stale };
}

/** The markers under `dir` that are fresh; those gone stale (their process died) are removed. */
async function liveMarkers(store: RemoteStore, dir: string): Promise<StoreMarker[]> {
  const listed = await store.listDetailed(`${dir}/`);
  const { fresh, stale } = splitLeases(new Map([...listed].map(([k, v]) => [k, v.modified])), Date.now());
  const live: StoreMarker[] = [];
  for (const key of fresh) {
    const modified = listed.get(key)!.modified;
    const text = await store.getText(key);
    if (text === undefined) continue; // released since the listing
    try {
      live.push(JSON.parse(text) as StoreMarker);
    } catch {
      // Not ours to judge: a fresh marker unread still counts.
      live.push({ host: key, pid: 0, job: dir, startedAt: modified });
    }
  }
  if (stale.length) await store.remove(stale);
  return live;
}

/** The store's readers whose lease is fresh; leases gone stale (their reader died) are removed. */
export const liveStoreReaders = (store: RemoteStore) => liveMarkers(store, LAYOUT.readers);

export const describeStoreMarkers = (readers: StoreMarker[]) =>
  readers.map((r) => `${r.job} on ${r.host} (pid ${r.pid}, since ${r.startedAt})`).join(', ');
