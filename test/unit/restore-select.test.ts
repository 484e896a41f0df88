// The pure parts of a restore and of retention, on a catalog built in the
// test (the Catalog interface is the seam; no server): which backup a target
// restores from, what the archive lets it reach, where retention cuts, WAL
// segment arithmetic and migration statement splitting.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { retentionPlan } from '../../ops-scripts/lib/backup/prune.ts';
import type { BackupRecord } from '../../ops-scripts/lib/backup/repository.ts';
import { parseSegment, segmentName } from '../../ops-scripts/lib/backup/wal.ts';
import { LEASE_SECONDS, splitLeases } from '../../ops-scripts/lib/backup/store-readers.ts';
import { exitCodeFor, ExitCode } from '../../ops-scripts/lib/errors.ts';
import { splitStatements } from '../../ops-scripts/lib/migration-lint.ts';
import type { Catalog } from '../../ops-scripts/lib/restore/catalog.ts';
import { chooseBackup, pickBackup, walToKeep } from '../../ops-scripts/lib/restore/select.ts';

const SEG = 16 * 1024 * 1024;
const seg = (n: number) => segmentName(1, BigInt(n), SEG);

function backup(
  id: string,
  kind: 'physical' | 'logical',
  endedAt: string,
  startSegno: number,
  stopLsn: string,
): BackupRecord {
  return {
    format: 1,
    id,
    kind,
    label: id,
    status: 'complete',
    startedAt: endedAt,
    finishedAt: endedAt,
    durationSeconds: 1,
    server: { version: '15', major: 15, systemIdentifier: '1', walSegmentBytes: SEG },
    ...(kind === 'physical'
      ? {
          physical: {
            startLsn: `0/${(startSegno * SEG).toString(16).toUpperCase()}`,
            stopLsn,
            timeline: 1,
            startSegment: seg(startSegno),
            stopSegment: seg(startSegno),
            endedAt,
            compression: 'none',
            checkpoint: 'fast',
            walIncluded: true,
          },
        }
      : {}),
    sizes: { rawBytes: 1, storedBytes: 1 },
    throughputMBps: 1,
    files: [],
    verification: { tool: 'pg_verifybackup', ok: true, seconds: 1 },
  };
}

/** Two backups, WAL segments 2..6 archived a minute apart from 10:00 (segment 4 missing when asked). */
function catalog(opts: { gap?: boolean } = {}): Catalog {
  const walFiles = [2, 3, 4, 5, 6].filter((n) => !(opts.gap && n === 4)).map(seg);
  return {
    source: 'local',
    backups: [
      backup('B1', 'physical', '2026-11-24T10:00:30Z', 2, '0/2000100'),
      backup('B2', 'physical', '2026-11-24T10:02:30Z', 4, '0/4000100'),
    ],
    walFiles,
    histories: new Map(),
    walTime: (n) => `2026-11-24T10:0${Number(parseSegment(n, SEG)!.segno) - 2}:59Z`,
    walPath: async (n) => n,
    walEncrypted: false,
    restorePoints: [{ name: 'before-upgrade', lsn: '0/3000050', time: '2026-11-24T10:01:40Z', timeline: 1 }],
    baseDir: async () => '',
    restoreCommand: '',
    fetchWal: async () => {},
    cleanup() {},
  };
}

const at = (iso: string) => ({ kind: 'time' as const, time: new Date(iso) });
const now = new Date('2026-11-25T00:00:00Z');
const code = (fn: () => unknown) => {
  try {
    fn();
    return ExitCode.ok;
  } catch (err) {
    return exitCodeFor(err);
  }
};

test('the newest backup that ended at or before the target; a named one must end before it', () => {
  assert.is(pickBackup(catalog(), at('2026-11-24T10:02:00Z')).id, 'B1');
  assert.is(pickBackup(catalog(), at('2026-11-24T10:03:00Z')).id, 'B2');
  assert.is(pickBackup(catalog(), at('2026-11-24T10:03:00Z'), 'B1').id, 'B1');
  assert.is(
    code(() => pickBackup(catalog(), at('2026-11-24T10:02:00Z'), 'B2')),
    ExitCode.badInput,
  );
  assert.is(
    code(() => pickBackup(catalog(), at('2026-11-24T10:02:00Z'), 'nope')),
    ExitCode.badInput,
  );
  assert.is(
    pickBackup(catalog(), { kind: 'name', name: 'before-upgrade' }).id,
    'B1',
    'a restore point picks by its LSN',
  );
  assert.is(pickBackup(catalog(), { kind: 'lsn', lsn: '0/5000000' }).id, 'B2');
});

test('a target before the oldest backup is bad input naming it', () => {
  try {
    pickBackup(catalog(), at('2026-11-24T09:00:00Z'));
    assert.unreachable();
  } catch (err) {
    assert.is(exitCodeFor(err), ExitCode.badInput);
    assert.match((err as Error).message, /oldest backup \(B1/);
  }
});

test('the archive bounds the target: past it is bad input, a gap before it is damage (exit 1) naming the segment', () => {
  assert.is(chooseBackup(catalog(), at('2026-11-24T10:04:30Z'), undefined, now).id, 'B2');
  assert.is(
    code(() => chooseBackup(catalog(), at('2026-11-24T10:09:00Z'), undefined, now)),
    ExitCode.badInput,
  );
  assert.is(
    code(() => chooseBackup(catalog(), at('2026-11-26T00:00:00Z'), undefined, now)),
    ExitCode.badInput,
    'the future',
  );
  // The live server asked at 10:10 had nothing more to archive (its newest segment was archived at 10:04:59):
  // a target up to 10:10 is reachable, a later one still is not.
  const asked = Date.parse('2026-11-24T10:10:00Z');
  assert.is(chooseBackup(catalog(), at('2026-11-24T10:09:00Z'), undefined, now, asked).id, 'B2');
  assert.is(
    code(() => chooseBackup(catalog(), at('2026-11-24T10:10:01Z'), undefined, now, asked)),
    ExitCode.badInput,
    'after the server was asked',
  );
  try {
    chooseBackup(catalog({ gap: true }), at('2026-11-24T10:04:30Z'), 'B1', now);
    assert.unreachable();
  } catch (err) {
    assert.is(exitCodeFor(err), ExitCode.failed);
    assert.match((err as Error).message, new RegExp(`segment ${seg(4)} is missing`));
  }
});

test('a restore not started keeps the WAL from the segment its backup ended in through the one after the stop, with histories', () => {
  const c = catalog();
  const b1 = c.backups[0]!; // segments 2.., stopped in segment 2
  // Stopping in segment 4: segments 2 (the backup's copy of it ends with the backup) to 5.
  assert.equal(walToKeep(c, b1, 4n * BigInt(SEG) + 100n), [seg(2), seg(3), seg(4), seg(5)]);
  // Stopping where the backup did ('immediate'): its own segment and the next one.
  assert.equal(walToKeep(c, b1, 2n * BigInt(SEG) + 0x100n), [seg(2), seg(3)]);
  // Never past the archive: stopping in its last segment keeps what there is.
  assert.equal(walToKeep(c, b1, 6n * BigInt(SEG)), [seg(2), seg(3), seg(4), seg(5), seg(6)]);
  // A switch to timeline 2 at segment 4: the segments from there on are timeline 2's, and both histories come along.
  const t2 = (n: number) => segmentName(2, BigInt(n), SEG);
  const switched: Catalog = {
    ...c,
    walFiles: [seg(2), seg(3), seg(4), t2(4), t2(5), '00000002.history', '00000003.history'],
    histories: new Map([[2, [{ timeline: 1, switchLsn: 4n * BigInt(SEG) + 0x200n }]]]),
  };
  assert.equal(walToKeep(switched, b1, 5n * BigInt(SEG) + 10n), ['00000002.history', seg(2), seg(3), t2(4), t2(5)]);
});

test('retention keeps the newest N of each kind and the WAL the oldest kept backup needs, history files always', () => {
  const records = [
    backup('P1', 'physical', '2026-11-20T00:00:00Z', 2, '0/2000100'),
    backup('L1', 'logical', '2026-11-20T00:00:00Z', 0, ''),
    backup('P2', 'physical', '2026-11-21T00:00:00Z', 4, '0/4000100'),
    backup('L2', 'logical', '2026-11-21T00:00:00Z', 0, ''),
  ];
  const plan = retentionPlan(records, [seg(2), seg(3), `${seg(3)}.00000028.backup`, seg(4), '00000002.history'], {
    physical: 1,
    logical: 1,
  });
  assert.equal(plan.removed, [
    { kind: 'physical', id: 'P1' },
    { kind: 'logical', id: 'L1' },
  ]);
  assert.equal(plan.walRemoved, [seg(2), seg(3), `${seg(3)}.00000028.backup`]);
  assert.is(
    code(() => retentionPlan(records, [], { physical: 0, logical: 1 })),
    ExitCode.badInput,
    'never keep none',
  );
});

test("a store reader's lease is fresh for five minutes after it was written, by this host's clock or the store's if ahead", () => {
  const now = Date.parse('2026-12-06T12:00:00Z');
  const at = (s: number) => new Date(now - s * 1000).toISOString();
  const leases = new Map([
    ['readers/a-1.json', at(10)],
    ['readers/b-2.json', at(LEASE_SECONDS - 1)],
    ['readers/c-3.json', at(LEASE_SECONDS + 1)],
    ['readers/d-4.json', at(3600)],
  ]);
  assert.equal(splitLeases(leases, now), {
    fresh: ['readers/a-1.json', 'readers/b-2.json'],
    stale: ['readers/c-3.json', 'readers/d-4.json'],
  });
  // The store's clock ten minutes ahead of this host's: its leases look written in the future, and are fresh.
  assert.equal(splitLeases(new Map([['readers/e-5.json', at(-600)]]), now).fresh, ['readers/e-5.json']);
  assert.equal(
    splitLeases(
      new Map([
        ['readers/e-5.json', at(-600)],
        ['readers/f-6.json', at(-600 + LEASE_SECONDS + 1)],
      ]),
      now,
    ).stale,
    ['readers/f-6.json'],
    'stale by the store clock',
  );
  assert.equal(splitLeases(new Map(), now), { fresh: [], stale: [] });
});

test('WAL segment names and numbers round-trip across the 4 GB boundary (all-digit names included)', () => {
  for (const n of [0n, 255n, 256n, 257n, 0xffffn]) {
    const name = segmentName(1, n, SEG);
    assert.is(parseSegment(name, SEG)!.segno, n);
  }
  assert.is(segmentName(1, 256n + 9n, SEG), '000000010000000100000009');
  assert.is(segmentName(1, 0xffn, SEG), '0000000100000000000000FF');
});

test('statements split on semicolons outside quotes, comments and dollar quotes', () => {
  const sql = [
    "CREATE TABLE a (x text DEFAULT ';');",
    '-- a comment; not a statement',
    'CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;',
    'SELECT 2',
  ].join('\n');
  assert.equal(splitStatements(sql), [
    "CREATE TABLE a (x text DEFAULT ';')",
    'CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql',
    'SELECT 2',
  ]);
});

test.run();
