// npm run bench:verify: verifying a new base backup, side by side in one run
// on a seeded throwaway cluster (BENCH_STUDENTS, default 50,000: about 1 GB):
// the stream check against the manifest (what the backup job runs now) and
// an extracted copy + pg_verifybackup (what it ran before, and what
// backup:verify --deep runs), alternating rounds, medians and the ratio; and
// what the backup job itself spent verifying after the transfer, now that it
// hashes base.tar while pg_basebackup writes it.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { backupContext } from '../ops-scripts/lib/backup/context.ts';
import { extractBaseBackup } from '../ops-scripts/lib/backup/extract.ts';
import { runBackup } from '../ops-scripts/lib/backup/job.ts';
import { streamVerify } from '../ops-scripts/lib/backup/stream-verify.ts';
import { withClient } from '../ops-scripts/lib/db.ts';
import { run } from '../ops-scripts/lib/run.ts';
import { seed } from '../ops-scripts/lib/seed/load.ts';
import { startTestStack } from '../test/harness.ts';

const STUDENTS = Number(process.env.BENCH_STUDENTS ?? 50_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const stack = await startTestStack();
try {
  await seed(stack.owner(), { seed: 'bench', students: STUDENTS, yearEnd: '2026-06-12' }, { existing: 'refuse' });
  await withClient(stack.pg, (c) => c.query('CHECKPOINT'));
  const ctx = backupContext(stack.ctx, { ...process.env, ...stack.env });
  const { record } = await runBackup(ctx, {
    type: 'physical',
    keep: { physical: 7, logical: 14 },
    compression: 'server-zstd:1',
  });
  const dir = ctx.repo.backupDir('physical', record.id);
  const manifest = readFileSync(join(dir, 'backup_manifest'), 'utf8');
  const scratch = join(ctx.repo.kindDir('physical'), '.bench-verify');
  const stream = async () => {
    const r = await streamVerify(dir, manifest, { pgWaldump: ctx.pg.bin('pg_waldump'), scratch, as: ctx.as });
    if (r.problems.length) throw new Error(r.problems.join('\n'));
  };
  const extracted = async () => {
    try {
      await extractBaseBackup(dir, scratch, { as: ctx.as, withManifest: true });
      await run(ctx.pg.bin('pg_verifybackup'), ['-q', scratch], { as: ctx.as });
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  };
  const times: Record<string, number[]> = { stream: [], extracted: [] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const [name, fn] of [
      ['stream', stream],
      ['extracted', extracted],
    ] as const) {
      const t0 = performance.now();
      await fn();
      times[name]!.push((performance.now() - t0) / 1000);
    }
  }
  const s = median(times.stream!),
    e = median(times.extracted!);
  console.log(
    `bench:verify: backup of ${(record.sizes.rawBytes / 1048576).toFixed(0)} MB (${(record.sizes.storedBytes / 1048576).toFixed(0)} MB stored, zstd:1), ${ROUNDS} alternating rounds, median:\n` +
      `  stream check against the manifest  ${s.toFixed(2)} s\n` +
      `  extract + pg_verifybackup          ${e.toFixed(2)} s\n` +
      `  ratio stream/extracted             ${(s / e).toFixed(2)}x\n` +
      `  the backup job's own check, left after the transfer (base.tar hashed while written): ${record.verification.seconds.toFixed(2)} s`,
  );
} finally {
  await stack.stop();
}
