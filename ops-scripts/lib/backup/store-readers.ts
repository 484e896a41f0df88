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

export interface StoreReader {
  host: string;
  pid: number;
  job: string;
  startedAt: string;
}

/**
 * Leases the store for `job` until the returned release (or an interruption). A store this process cannot write
 * to (read-only credentials) cannot be pruned by it either: the read goes on unguarded, with a warning.
 */
export async function leaseStore(store: RemoteStore, job: string, logger: Logger): Promise<() => Promise<void>> {
  const reader: StoreReader = { host: hostname(), pid: process.pid, job, startedAt: new Date().toISOString() };
  const key = `${LAYOUT.readers}/${reader.host}-${reader.pid}.json`;
  const write = () => store.putText(key, JSON.stringify(reader));
  try {
    await write();
  } catch (err) {
    logger.log({
      event: 'warn',
      message: `could not leave a reader's lease in the object store (${describeError(err)}): retention on another host does not see this ${job}`,
    });
    return async () => {};
  }
  const timer = setInterval(() => void write().catch(() => {}), RENEW_MS);
  timer.unref();
  let released: Promise<void> | undefined;
  const release = () => {
    clearInterval(timer);
    return (released ??= store.remove([key]).catch(() => {}));
  };
  const forget = onInterrupt(release);
  return async () => {
    forget();
    await release();
  };
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

/** The store's readers whose lease is fresh; leases gone stale (their reader died) are removed. */
export async function liveStoreReaders(store: RemoteStore): Promise<StoreReader[]> {
  const listed = await store.listDetailed(`${LAYOUT.readers}/`);
  const { fresh, stale } = splitLeases(new Map([...listed].map(([k, v]) => [k, v.modified])), Date.now());
  const live: StoreReader[] = [];
  for (const key of fresh) {
    const modified = listed.get(key)!.modified;
    const text = await store.getText(key);
    if (text === undefined) continue; // released since the listing
    try {
      live.push(JSON.parse(text) as StoreReader);
    } catch {
      // Not ours to judge: a fresh lease unread still defers.
      live.push({ host: key, pid: 0, job: 'reader', startedAt: modified });
    }
  }
  if (stale.length) await store.remove(stale);
  return live;
}

export const describeStoreReaders = (readers: StoreReader[]) =>
  readers.map((r) => `${r.job} on ${r.host} (pid ${r.pid}, since ${r.startedAt})`).join(', ');
