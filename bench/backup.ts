// npm run bench:backup: our physical backup against a bare pg_basebackup with
// the same options, side by side in one run, for each compression, on a
// seeded throwaway cluster of at least 1 GB. "Ours" is the backup phase of the
// job (lock, pg_basebackup, manifest read); the pg_verifybackup pass that
// follows is reported beside it, separately.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { declarations } from '../roles/declarations.ts';
import { backupContext } from '../ops-scripts/lib/backup/context.ts';
import { runBackup } from '../ops-scripts/lib/backup/job.ts';
import { withClient } from '../ops-scripts/lib/db.ts';
import { ensurePrivateDir } from '../ops-scripts/lib/files.ts';
import { migratorConfig } from '../migrations/engine/migrate.ts';
import { pgEnv } from '../ops-scripts/lib/pg-password.ts';
import { run } from '../ops-scripts/lib/run.ts';
import { readSecrets } from '../ops-scripts/lib/secrets.ts';
import { seed } from '../ops-scripts/lib/seed/load.ts';
import { startTestStack } from '../test/harness.ts';

const STUDENTS = Number(process.env.BENCH_STUDENTS ?? 50_000);
const COMPRESSIONS = (process.env.BENCH_COMPRESSIONS ?? 'none,server-zstd:1,server-lz4,client-gzip:1').split(',');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const stack = await startTestStack();
try {
  const owner = migratorConfig(stack.pg, readSecrets(stack.ctx.paths.secretsFile)!.roles[declarations.migrator]!);
  await seed(owner, { seed: 'bench', students: STUDENTS, yearEnd: '2026-06-12' }, { existing: 'refuse' });
  await withClient(stack.pg, (c) => c.query('CHECKPOINT'));
  const size = await withClient(stack.pg, async (c) =>
    Number((await c.query('SELECT sum(pg_database_size(oid)) AS s FROM pg_database')).rows[0].s),
  );
  const mb = size / 1048576;
  console.log(
    `bench:backup: cluster of ${mb.toFixed(0)} MB, PostgreSQL ${stack.ctx.pg.version}, ${ROUNDS} rounds, median`,
  );
  const ctx = backupContext(stack.ctx, { ...process.env, ...stack.env });
  const rows: string[] = [];
  // One discarded run first, so neither side pays for a cold cache.
  await runBackup(ctx, {
    type: 'physical',
    compression: 'none',
    checkpoint: 'fast',
    keep: { physical: 1, logical: 1 },
  });
  for (const compression of COMPRESSIONS) {
    const bare: number[] = [],
      ours: number[] = [],
      verify: number[] = [];
    let stored = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const dir = mkdtempSync(join(tmpdir(), 'edupulse-bare-'));
      ensurePrivateDir(dir, stack.ctx.as);
      const t0 = performance.now();
      await run(
        ctx.pg.bin('pg_basebackup'),
        [
          '-D',
          join(dir, 'b'),
          '-Ft',
          '-X',
          'stream',
          '-c',
          'fast',
          '--manifest-checksums=SHA256',
          ...(compression === 'none' ? [] : [`--compress=${compression}`]),
        ],
        { as: ctx.as, env: pgEnv(ctx.backupLogin) },
      );
      bare.push((performance.now() - t0) / 1000);
      rmSync(dir, { recursive: true, force: true });
      const r = await runBackup(ctx, {
        type: 'physical',
        compression,
        checkpoint: 'fast',
        keep: { physical: 1, logical: 1 },
      });
      ours.push(r.record.sizes.rawBytes / 1048576 / r.record.throughputMBps);
      verify.push(r.record.verification.seconds);
      stored = r.record.sizes.storedBytes;
    }
    const b = median(bare),
      o = median(ours);
    rows.push(
      `| ${compression} | ${(stored / 1048576).toFixed(0)} MB | ${b.toFixed(2)} s (${(mb / b).toFixed(0)} MB/s) | ${o.toFixed(2)} s (${(mb / o).toFixed(0)} MB/s) | ${(b / o).toFixed(2)}x | ${median(verify).toFixed(2)} s |`,
    );
    console.log(rows[rows.length - 1]);
  }
  console.log(
    [
      '',
      '| compression | stored | bare pg_basebackup | ours (backup phase) | ours/bare throughput | pg_verifybackup pass |',
      '|---|---|---|---|---|---|',
      ...rows,
    ].join('\n'),
  );
} finally {
  await stack.stop();
}
