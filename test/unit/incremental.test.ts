// Incremental backups (PostgreSQL 17+): the capability check, the parent a new
// incremental builds on, the chain a restore combines (and a broken one named),
// pg_combinebackup's arguments, retention keeping a kept incremental's chain,
// and the server parameter that makes them possible. PostgreSQL 17 is not
// installable here, so this is the logic; see the README for what ran.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSettings, postgresParameters } from '../../infra/settings.ts';
import { postgresFlags } from '../../infra/postgres-server.ts';
import {
  ancestorsToKeep,
  canIncremental,
  chainOf,
  chainProblems,
  combineArgs,
  incrementalParent,
} from '../../ops-scripts/lib/backup/incremental.ts';
import { retentionPlan } from '../../ops-scripts/lib/backup/prune.ts';
import type { BackupRecord } from '../../ops-scripts/lib/backup/repository.ts';

let n = 0;
function backup(
  opts: { parent?: string; major?: number; sysid?: string; ok?: boolean; kind?: 'physical' | 'logical' } = {},
): BackupRecord {
  const i = ++n;
  const at = new Date(Date.UTC(2026, 10, 1, i)).toISOString();
  const seg = `0000000100000000000000${String(i).padStart(2, '0')}`;
  return {
    format: 1,
    id: `b${i}`,
    kind: opts.kind ?? 'physical',
    label: '',
    status: 'complete',
    startedAt: at,
    finishedAt: at,
    durationSeconds: 1,
    server: {
      version: '17.0',
      major: opts.major ?? 17,
      systemIdentifier: opts.sysid ?? 'S',
      walSegmentBytes: 16 << 20,
    },
    ...(opts.kind === 'logical'
      ? {}
      : {
          physical: {
            startLsn: `0/${i}000028`,
            stopLsn: `0/${i}000100`,
            timeline: 1,
            startSegment: seg,
            stopSegment: seg,
            endedAt: at,
            compression: 'server-zstd:1',
            checkpoint: 'fast',
            walIncluded: true,
            ...(opts.parent ? { incremental: { parent: opts.parent } } : {}),
          },
        }),
    sizes: { rawBytes: 1, storedBytes: 1 },
    throughputMBps: 1,
    files: [],
    verification: { tool: 't', ok: opts.ok ?? true, seconds: 0 },
  };
}

test('only PostgreSQL 17 and later take incremental backups; 17 summarizes WAL for them, 15 and 16 are not given the parameter', () => {
  assert.not.ok(canIncremental(15));
  assert.not.ok(canIncremental(16));
  assert.ok(canIncremental(17));
  const where = { walArchiveDir: '/w', archiveScript: '/s' };
  assert.is(postgresParameters(defaultSettings.postgres, { ...where, major: 17 }).summarize_wal, 'on');
  assert.is(postgresParameters(defaultSettings.postgres, { ...where, major: 15 }).summarize_wal, undefined);
  assert.ok(postgresFlags(defaultSettings.postgres, [], 'postgres:17').includes('summarize_wal=on'));
  assert.not.ok(postgresFlags(defaultSettings.postgres, [], 'postgres:16.4').includes('summarize_wal=on'));
});

test('an incremental builds on the newest verified physical backup of the same cluster and major, or there is none', () => {
  const full = backup();
  const inc = backup({ parent: full.id });
  const other = backup({ sysid: 'OTHER' });
  const broken = backup({ ok: false });
  const dump = backup({ kind: 'logical' });
  const server = { systemIdentifier: 'S', major: 17 };
  assert.is(incrementalParent([full, inc, other, broken, dump], server)?.id, inc.id);
  assert.is(incrementalParent([other, dump], server), undefined, 'nothing of this cluster: a full backup');
  assert.is(incrementalParent([full], { systemIdentifier: 'S', major: 18 }), undefined, 'not across majors');
});

test('a restore combines the chain from its full backup on; a missing or looping link is named', () => {
  const full = backup();
  const a = backup({ parent: full.id });
  const b = backup({ parent: a.id });
  assert.equal(
    chainOf([b, full, a], b).map((r) => r.id),
    [full.id, a.id, b.id],
  );
  assert.equal(
    chainOf([full], full).map((r) => r.id),
    [full.id],
  );
  assert.throws(() => chainOf([full, b], b), new RegExp(`${a.id} \\(the parent of ${b.id}\\) is gone`));
  assert.equal(chainProblems([full, b], b).length, 1);
  assert.equal(chainProblems([full, a, b], b), []);
  const x = backup({ parent: 'loop' });
  const y = { ...backup({ parent: x.id }), id: 'loop' };
  assert.throws(() => chainOf([x, y], y), /loops/);
  assert.equal(combineArgs(['/c/b1', '/c/b2'], '/out'), [
    '--output',
    '/out',
    '--manifest-checksums=SHA256',
    '/c/b1',
    '/c/b2',
  ]);
});

test('retention keeps every backup a kept incremental builds on, and removes the rest as before', () => {
  const full1 = backup();
  const full2 = backup();
  const inc1 = backup({ parent: full2.id });
  const inc2 = backup({ parent: inc1.id });
  const records = [full1, full2, inc1, inc2];
  assert.equal([...ancestorsToKeep(records, [inc2])].sort(), [full2.id, inc1.id].sort());
  // keep 1: inc2 alone is useless, so its chain stays; full1 goes.
  const plan = retentionPlan(records, [], { physical: 1, logical: 1 });
  assert.equal(
    plan.removed.map((r) => r.id),
    [full1.id],
  );
  // Fulls only: keep 1 keeps just the newest.
  const fulls = [backup(), backup()];
  assert.equal(
    retentionPlan(fulls, [], { physical: 1, logical: 1 }).removed.map((r) => r.id),
    [fulls[0]!.id],
  );
});

test.run();
