// Which transactions the archived WAL holds around a target time, read with
// pg_waldump. Recovery to a time stops only at a commit (or abort) record
// later than the target; when the archive holds none, PostgreSQL ends with
// "recovery ended before configured recovery target was reached". Knowing the
// last commit at or before the target lets a restore stop exactly there.
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { failed } from '../errors.ts';
import { run } from '../run.ts';
import { parseLsn, parseSegment } from '../backup/wal.ts';
import { exactMicros, isoOf, type TargetTime } from './target.ts';

export interface XactRecord {
  kind: 'COMMIT' | 'ABORT' | 'COMMIT_PREPARED' | 'ABORT_PREPARED';
  lsn: string;
  /** ISO 8601 UTC with microseconds, as the record holds it. */
  time: string;
  /** Microseconds since the epoch (the record's own precision). */
  micros: bigint;
}

// A prepared transaction's end shows the original xid first: "COMMIT_PREPARED 738: 2026-..." (xactdesc.c).
const XACT_RE =
  /lsn: ([0-9A-F]+\/[0-9A-F]+),.*desc: (COMMIT_PREPARED|ABORT_PREPARED|COMMIT|ABORT) (?:\d+: )?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d{1,6}))? UTC/;

/** The transaction-end records in pg_waldump's output (run with TZ=UTC). */
export function parseXactRecords(text: string): XactRecord[] {
  const out: XactRecord[] = [];
  for (const line of text.split('\n')) {
    const m = XACT_RE.exec(line);
    if (!m) continue;
    const frac = (m[4] ?? '').padEnd(6, '0');
    const micros = BigInt(Date.parse(`${m[3]!.replace(' ', 'T')}Z`)) * 1000n + BigInt(frac);
    out.push({ kind: m[2] as XactRecord['kind'], lsn: m[1]!, time: `${m[3]!.replace(' ', 'T')}.${frac}Z`, micros });
  }
  return out;
}

export interface CommitsAround {
  /** The last transaction end at or before the target. */
  atOrBefore?: XactRecord;
  /** The first transaction end after the target, if the archive holds one. */
  after?: XactRecord;
  /** How many segments were read, and the last one. */
  scanned: number;
  through?: string;
}

export interface WalSource {
  /** The archived segments from the backup's start to the newest reachable, in order. */
  segments: string[];
  /** When the segment was archived (ISO), if known. */
  archivedAt(name: string): string | undefined;
  /** A local path holding the segment (downloaded first from a store). */
  path(name: string): Promise<string>;
  /** Slack on archivedAt, in ms (object stores keep whole seconds). */
  slackMs: number;
}

/** Transaction ends whose record starts in `name`; the next segment is read too, for a record that crosses into it. */
async function recordsIn(waldump: string, src: WalSource, i: number, segSize: number): Promise<XactRecord[]> {
  const name = src.segments[i]!;
  const next = src.segments[i + 1];
  const files = [await src.path(name)];
  if (next && next.slice(0, 8) === name.slice(0, 8)) files.push(await src.path(next));
  // pg_waldump reads a range from one directory; the store's and the archive's files may live in two.
  const dir = mkdtempSync(join(tmpdir(), 'edupulse-waldump-'));
  try {
    for (const f of files) symlinkSync(f, join(dir, basename(f)));
    const r = await run(
      waldump,
      ['--rmgr=Transaction', '--path', dir, basename(files[0]!), basename(files[files.length - 1]!)],
      { env: { TZ: 'UTC' }, nothrow: true, dieWithParent: true },
    );
    // It ends with an error at the end of the WAL it was given ("invalid record length"); a file it cannot read is real.
    if (r.code !== 0 && /could not (open|read)|Permission denied|No such file/i.test(r.stderr)) {
      throw failed(`pg_waldump could not read archived WAL segment ${name}: ${r.stderr.trim().split('\n').pop()}`);
    }
    const segno = parseSegment(name, segSize)!.segno;
    return parseXactRecords(r.stdout).filter((x) => parseLsn(x.lsn) / BigInt(segSize) === segno);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The transaction ends around `target`: reads forward from the first segment
 * archived at or after the target (earlier ones were complete before it)
 * until one ends after it, and back from there until one ends at or before it.
 */
export async function commitsAround(
  waldump: string,
  src: WalSource,
  target: TargetTime,
  segSize: number,
): Promise<CommitsAround> {
  const t = exactMicros(target);
  const { segments } = src;
  const archivedBefore = (n: string) => {
    const at = src.archivedAt(n);
    return at !== undefined && Date.parse(at) + src.slackMs < target.time.getTime();
  };
  let first = segments.findIndex((n) => !archivedBefore(n));
  if (first < 0) first = segments.length - 1;
  const result: CommitsAround = { scanned: 0 };
  for (let i = first; i < segments.length && !result.after; i++) {
    for (const x of await recordsIn(waldump, src, i, segSize)) {
      if (x.micros <= t) result.atOrBefore = x;
      else {
        result.after = x;
        break;
      }
    }
    result.scanned++;
    result.through = segments[i];
  }
  for (let i = first - 1; i >= 0 && !result.atOrBefore; i--) {
    const before = (await recordsIn(waldump, src, i, segSize)).filter((x) => x.micros <= t);
    result.scanned++;
    result.atOrBefore = before[before.length - 1];
  }
  return result;
}

export interface ResolvedTime {
  /** The recovery target to give PostgreSQL. */
  target: { kind: 'time'; time: Date; micros?: bigint } | { kind: 'lsn'; lsn: string } | { kind: 'immediate' };
  /** Set when the archive holds nothing after the target: how the stop point was chosen. */
  quiet?: { lastCommit?: { time: string; lsn: string }; scannedThrough?: string; note: string };
}

/**
 * A time target as PostgreSQL can reach it: unchanged when the archive holds a
 * transaction end after it; otherwise the LSN of the last commit at or before
 * it (or the end of the backup, when that commit precedes it), which is the
 * same state, since nothing committed between that commit and the target.
 */
export function resolveTime(time: TargetTime, around: CommitsAround, backupStopLsn: string): ResolvedTime {
  if (around.after) return { target: { kind: 'time', ...time } };
  const last = around.atOrBefore;
  const through = around.through ?? 'the newest segment';
  if (last && parseLsn(last.lsn) >= parseLsn(backupStopLsn)) {
    return {
      target: { kind: 'lsn', lsn: last.lsn },
      quiet: {
        lastCommit: { time: last.time, lsn: last.lsn },
        scannedThrough: through,
        note:
          `nothing committed between ${last.time} and ${isoOf(time)} nor after it in the archived WAL (read through ${through}); ` +
          `the state at the target is the state after the transaction that ended at ${last.time} (LSN ${last.lsn}), recovered exactly to it`,
      },
    };
  }
  return {
    target: { kind: 'immediate' },
    quiet: {
      ...(last ? { lastCommit: { time: last.time, lsn: last.lsn } } : {}),
      scannedThrough: through,
      note:
        `nothing committed between the end of the backup and ${isoOf(time)} nor after it in the archived WAL (read through ${through}); ` +
        'the state at the target is the state at the end of the backup, recovered exactly to it',
    },
  };
}
