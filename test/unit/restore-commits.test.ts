// Reading transaction ends from pg_waldump's output, and choosing the stop
// point for a time target: pure functions, exact values.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseXactRecords, resolveTime, type CommitsAround } from '../../ops-scripts/lib/restore/commits.ts';
import { checkWalEvidence } from '../../ops-scripts/lib/drill/drill.ts';
import {
  describeTarget,
  parseTarget,
  parseTargetTime,
  targetParameters,
} from '../../ops-scripts/lib/restore/target.ts';

const DUMP = `rmgr: Transaction len (rec/tot):     34/    34, tx:        735, lsn: 0/0D0000D8, prev 0/0D0000A0, desc: COMMIT 2026-11-25 08:39:00.964019 UTC
rmgr: Transaction len (rec/tot):     82/    82, tx:        736, lsn: 0/0D000160, prev 0/0D000118, desc: COMMIT 2026-11-25 08:39:03.3 UTC; inval msgs: catcache 11
rmgr: Transaction len (rec/tot):     34/    34, tx:        737, lsn: 0/0D0001B8, prev 0/0D000160, desc: ABORT 2026-11-25 08:39:04.000001 UTC
rmgr: Transaction len (rec/tot):     50/    50, tx:        738, lsn: 0/0D000200, prev 0/0D0001B8, desc: PREPARE gid t1: 2026-11-25 08:39:05.000000 UTC
rmgr: Transaction len (rec/tot):     66/    66, tx:          0, lsn: 0/0D000240, prev 0/0D000200, desc: COMMIT_PREPARED 738: 2026-11-25 08:39:06.000000 UTC
rmgr: Transaction len (rec/tot):     66/    66, tx:          0, lsn: 0/0D000290, prev 0/0D000240, desc: ABORT_PREPARED 739: 2026-11-25 08:39:07.5 UTC
pg_waldump: error: error in WAL record at 0/D0002E0: invalid record length at 0/D0002E0: wanted 24, got 0`;

test('parses commit and abort records with microsecond times; ignores PREPARE', () => {
  const r = parseXactRecords(DUMP);
  assert.equal(
    r.map((x) => [x.kind, x.lsn, x.time]),
    [
      ['COMMIT', '0/0D0000D8', '2026-11-25T08:39:00.964019Z'],
      ['COMMIT', '0/0D000160', '2026-11-25T08:39:03.300000Z'],
      ['ABORT', '0/0D0001B8', '2026-11-25T08:39:04.000001Z'],
      ['COMMIT_PREPARED', '0/0D000240', '2026-11-25T08:39:06.000000Z'],
      ['ABORT_PREPARED', '0/0D000290', '2026-11-25T08:39:07.500000Z'],
    ],
  );
  assert.is(r[0]!.micros, 1795595940964019n);
  assert.ok(r[2]!.micros - r[1]!.micros === 700001n);
});

const rec = (lsn: string, time: string) => ({ kind: 'COMMIT' as const, lsn, time, micros: 0n });
const T = new Date('2026-11-25T08:40:00.000Z');

test('a later commit in the archive keeps the time target as given', () => {
  const around: CommitsAround = {
    atOrBefore: rec('0/0D0000D8', 'a'),
    after: rec('0/0E000010', 'b'),
    scanned: 2,
    through: 'X',
  };
  assert.equal(resolveTime({ time: T }, around, '0/0C000100'), { target: { kind: 'time', time: T } });
});

test('nothing after the target: recover to the last commit before it, by its LSN', () => {
  const around: CommitsAround = {
    atOrBefore: rec('0/0D0000D8', '2026-11-25T08:39:00.964019Z'),
    scanned: 3,
    through: '00000001000000000000000F',
  };
  const r = resolveTime({ time: T }, around, '0/0C000100');
  assert.equal(r.target, { kind: 'lsn', lsn: '0/0D0000D8' });
  assert.equal(r.quiet?.lastCommit, { time: '2026-11-25T08:39:00.964019Z', lsn: '0/0D0000D8' });
  assert.match(r.quiet!.note, /read through 00000001000000000000000F/);
});

test('nothing after the target and the last commit before the backup ended: recover to the end of the backup', () => {
  const r = resolveTime({ time: T }, { atOrBefore: rec('0/0B000010', 'x'), scanned: 1, through: 'S' }, '0/0C000100');
  assert.equal(r.target, { kind: 'immediate' });
  assert.equal(resolveTime({ time: T }, { scanned: 4, through: 'S' }, '0/0C000100').target, { kind: 'immediate' });
});

test('a target time keeps its microseconds, to the recovery setting and the report; a millisecond one prints as before', () => {
  // A commit time copied from a report or the server's log names that commit: cut to the millisecond, it would be left out.
  const t = parseTarget({ time: '2026-11-25T10:39:00.964019+02:00' });
  assert.equal(t, { kind: 'time', time: new Date('2026-11-25T08:39:00.964Z'), micros: 1795595940964019n });
  assert.equal(targetParameters(t), { recovery_target_time: '2026-11-25 08:39:00.964019+00' });
  assert.is(describeTarget(t), 'time 2026-11-25T08:39:00.964019Z');
  const ms = parseTarget({ time: '2026-11-25T08:39:00.964Z' });
  assert.equal(ms, { kind: 'time', time: new Date('2026-11-25T08:39:00.964Z') });
  assert.equal(targetParameters(ms), { recovery_target_time: '2026-11-25 08:39:00.964+00' });
  assert.equal(parseTarget({ time: '2026-11-25T08:39:00.9640Z' }), ms, 'zeros below the millisecond add nothing');
  assert.equal(parseTarget({ time: '2026-11-25T08:39:00.000001Z' }), {
    kind: 'time',
    time: new Date('2026-11-25T08:39:00.000Z'),
    micros: 1795595940000001n,
  });
  // The time target given to PostgreSQL, and the quiet note, keep the microseconds.
  const tt = parseTargetTime('2026-11-25T08:39:00.964019Z');
  const around: CommitsAround = {
    atOrBefore: rec('0/0D0000D8', '2026-11-25T08:39:00.964019Z'),
    scanned: 1,
    through: 'S',
  };
  assert.equal(resolveTime(tt, { ...around, after: rec('0/0D000100', 'b') }, '0/0C000100').target, {
    kind: 'time',
    time: tt.time,
    micros: 1795595940964019n,
  });
  assert.match(resolveTime(tt, around, '0/0C000100').quiet!.note, /and 2026-11-25T08:39:00\.964019Z nor after it/);
});

test("WAL evidence: the last replayed transaction must be the archive's last at or before the target, to the microsecond", () => {
  const T = new Date('2026-11-25T08:40:00.000Z');
  const us = (d: number) => String(BigInt(T.getTime()) * 1000n + BigInt(d));
  const ev = {
    atOrBefore: { time: '2026-11-25T08:39:59.999500Z', lsn: '0/5000100', micros: us(-500) },
    after: { time: '2026-11-25T08:40:00.250000Z', lsn: '0/5000200', micros: us(250000) },
    through: 'S',
  };
  const ok = checkWalEvidence({ walEvidence: ev, lastReplayedMicros: us(-500) }, { time: T });
  assert.is(ok.status, 'passed');
  assert.match(
    ok.detail,
    /0\.000500s before it\); the first after it .* 0\.250000s after the target\) was not replayed/,
  );
  assert.is(
    checkWalEvidence({ walEvidence: ev, lastReplayedMicros: us(250000) }, { time: T }).status,
    'failed',
    'one later replayed',
  );
  assert.is(
    checkWalEvidence({ walEvidence: ev, lastReplayedMicros: us(-501) }, { time: T }).status,
    'failed',
    'one microsecond off',
  );
  assert.is(
    checkWalEvidence({ walEvidence: { through: 'S' }, lastReplayedMicros: null }, { time: T }).status,
    'passed',
    'nothing to replay, nothing replayed',
  );
  assert.is(checkWalEvidence({ lastReplayedMicros: null }, { time: T }).status, 'skipped');
});

test.run();
