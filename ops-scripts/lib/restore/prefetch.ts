// WAL from the object store, fetched ahead of replay. A restore from the store
// would otherwise run one restore_command per segment, each downloading its
// segment only when the server asks for it, so replay waits on every
// download. Here the restore job itself downloads the segments recovery will
// read, in order, several at a time, decompressed into a spool directory
// bounded in bytes. The restore_command (spoolRestoreCommand) answers a name
// the store's listing (read when the restore began) does not hold with "not
// there" at once (the end of the archive), moves a spooled segment into
// place, waits for one being fetched, and only for anything else (a history
// file, a segment the prefetcher skipped, a spool already gone) runs wal:fetch
// itself. It tells the prefetcher the name it was asked for (<spool>/.asked),
// so the window follows replay and stale files are dropped.
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSegment } from '../backup/wal.ts';
import type { Logger } from '../logger.ts';
import type { OsUser } from '../run.ts';
import { describeError } from '../errors.ts';

const FETCHING = '.fetching';
const ASKED = '.asked';
const LISTING = '.listing';

export interface PrefetchOptions {
  /** The segments recovery reads, in order (checkArchive's). */
  segments: string[];
  /** Every WAL file name the archive holds (the restore_command answers others "not there" at once). */
  listing: Iterable<string>;
  /** Writes WAL file `name`, as the server wrote it, to `target` (owned by the server's OS user). */
  fetch(name: string, target: string): Promise<void>;
  spool: string;
  segmentBytes: number;
  /** Upper bound on the spool: segments waiting there plus those being fetched. */
  maxBytes: number;
  parallel: number;
  as?: OsUser;
  logger: Logger;
}

export interface PrefetchStats {
  fetched: number;
  used: number;
  failed: number;
}

export interface Prefetcher {
  /** Stops fetching, removes the spool; what was fetched, how much of it the server took, what failed. */
  stop(): Promise<PrefetchStats>;
}

/**
 * The restore_command reading `spool` first: take the segment if it is there (after waiting for one
 * being fetched), else run `fallback` (a restore_command of its own, with %f and %p, and its exit
 * codes). The spool may be gone (a paused restore resumed later): then every file comes from the fallback.
 */
export function spoolRestoreCommand(spool: string, fallback: string): string {
  const script = [
    `{ printf %s "$2" >"$1/${ASKED}.tmp" && mv -f "$1/${ASKED}.tmp" "$1/${ASKED}"; } 2>/dev/null`,
    // Not in the store's listing the restore read: the end of the archive (or a timeline that does not
    // exist), answered at once instead of by a wal:fetch process asking the store.
    `if [ -f "$1/${LISTING}" ] && ! grep -qxF -- "$2" "$1/${LISTING}"; then exit 1; fi`,
    // Bounded: a fetch cannot hold recovery longer than 30 s; then the command fetches the file itself.
    `n=0; while [ -e "$1/$2${FETCHING}" ] && [ $n -lt 3000 ]; do sleep 0.01; n=$((n + 1)); done`,
    `mv -f "$1/$2" "$3" 2>/dev/null && exit 0`,
    'exit 99',
  ].join('; ');
  return `sh -c '${script}' restore-wal '${spool}' %f "%p"; rc=$?; [ $rc -ne 99 ] && exit $rc; ${fallback}`;
}

export function startPrefetch(o: PrefetchOptions): Prefetcher {
  mkdirSync(o.spool, { recursive: true, mode: 0o700 });
  if (o.as) chownSync(o.spool, o.as.uid, o.as.gid);
  writeFileSync(join(o.spool, LISTING), [...o.listing].join('\n') + '\n', { mode: 0o644 });
  const window = Math.max(1, Math.floor(o.maxBytes / o.segmentBytes));
  const segno = (name: string) => parseSegment(name.slice(0, 24), o.segmentBytes)?.segno ?? -1n;
  const inFlight = new Set<Promise<void>>();
  const spooled = new Set<string>();
  let next = 0;
  let fetched = 0;
  let failed = 0;
  let used = 0;
  let stopped = false;

  const fetchOne = async (name: string) => {
    const marker = join(o.spool, `${name}${FETCHING}`);
    writeFileSync(marker, '');
    try {
      await o.fetch(name, join(o.spool, name));
      spooled.add(name);
      fetched++;
    } catch (err) {
      // The restore_command fetches it itself; nothing is lost, only the head start.
      failed++;
      o.logger.log({ event: 'warn', message: `prefetch of WAL ${name} failed: ${describeError(err)}` });
    } finally {
      rmSync(marker, { force: true });
    }
  };

  const tick = () => {
    if (stopped) return;
    // Where replay is: the last name the server asked for; everything up to it is consumed or stale.
    const asked = existsSync(join(o.spool, ASKED)) ? readFileSync(join(o.spool, ASKED), 'utf8').trim() : '';
    if (asked) {
      const at = segno(asked);
      while (next < o.segments.length && segno(o.segments[next]!) <= at) next++;
      for (const name of spooled) {
        if (!existsSync(join(o.spool, name))) {
          spooled.delete(name);
          used++;
        } else if (segno(name) < at) {
          rmSync(join(o.spool, name), { force: true });
          spooled.delete(name);
        }
      }
    } else
      for (const name of spooled)
        if (!existsSync(join(o.spool, name))) {
          spooled.delete(name);
          used++;
        }
    while (inFlight.size < o.parallel && inFlight.size + spooled.size < window && next < o.segments.length) {
      const p = fetchOne(o.segments[next++]!).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
  };
  const timer = setInterval(tick, 20);
  tick();

  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all(inFlight);
      for (const name of spooled) if (!existsSync(join(o.spool, name))) used++;
      rmSync(o.spool, { recursive: true, force: true });
      return { fetched, used, failed };
    },
  };
}
