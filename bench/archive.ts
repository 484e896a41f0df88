// npm run bench:archive: does the compressing archive_command keep up, and
// which wal_compression to run. On a throwaway stack:
//   1. a write burst (BENCH_WAL_MB, default 1000 MB of WAL) with the archiver
//      running: the server's WAL rate, and how far the archiver is behind when
//      the burst ends (seconds until the last segment is archived);
//   2. the archive script alone over copies of real segments: ms per segment and
//      MB/s (its capacity, to set against the WAL rate);
//   3. the same UPDATE after a checkpoint (full-page images) under
//      wal_compression = pglz ('on'), lz4 and zstd, alternating rounds: WAL bytes
//      and seconds, medians.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { withClient } from '../ops-scripts/lib/db.ts';
import { run } from '../ops-scripts/lib/run.ts';
import { startTestStack } from '../test/harness.ts';

const WAL_MB = Number(process.env.BENCH_WAL_MB ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const stack = await startTestStack();
try {
  const pg = stack.pg;
  const q = <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    withClient(pg, async (c) => (await c.query(sql, params)).rows as T[]);
  await q('CREATE TABLE bench_wal (id bigint, payload text)');

  // 1. The burst, archiving as it goes.
  const [{ lsn: start }] = await q<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn');
  const t0 = performance.now();
  let written = 0;
  for (let batch = 0; written < WAL_MB * 1048576; batch++) {
    await q(
      `INSERT INTO bench_wal SELECT g, md5(g::text) || repeat(md5((g * 7)::text), 3) FROM generate_series($1::bigint, $1::bigint + 199999) g`,
      [batch * 200_000],
    );
    [{ b: written }] = await q<{ b: number }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::float8 AS b', [start]);
  }
  const burstSeconds = (performance.now() - t0) / 1000;
  const [{ seg: last }] = await q<{ seg: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS seg');
  const t1 = performance.now();
  for (;;) {
    const [{ a }] = await q<{ a: string | null }>('SELECT last_archived_wal AS a FROM pg_stat_archiver');
    if (a && /^[0-9A-F]{24}$/.test(a) && a >= last) break;
    await sleep(20);
  }
  const lagSeconds = (performance.now() - t1) / 1000;
  const wal = stack.ctx.paths.walArchiveDir;
  const archived = readdirSync(wal).filter((f) => f.endsWith('.zst'));
  const storedBytes = archived.reduce((s, f) => s + statSync(join(wal, f)).size, 0);

  // 2. The script alone, as the server's OS user, over 20 real segments.
  const scratch = join(stack.ctx.paths.root, 'archive-bench');
  const plain = join(scratch, 'plain');
  const out = join(scratch, 'out');
  for (const d of [scratch, plain, out]) mkdirSync(d, { recursive: true });
  const sample = archived.slice(0, 20);
  for (const f of sample) spawnSync('zstd', ['-q', '-d', '-o', join(plain, f.slice(0, 24)), join(wal, f)]);
  if (stack.ctx.as) await run('chown', ['-R', `${stack.ctx.as.uid}:${stack.ctx.as.gid}`, scratch]);
  const loop = `for f in "${plain}"/*; do '${stack.ctx.paths.archiveScript}' "$f" "$(basename "$f")" '${out}' ${stack.ctx.settings.postgres.archiveZstdLevel} || exit 1; done`;
  const s0 = performance.now();
  await run('/bin/sh', ['-c', loop], { as: stack.ctx.as });
  const perSegment = (performance.now() - s0) / sample.length;
  rmSync(scratch, { recursive: true, force: true });

  // 3. wal_compression for full-page images.
  const modes = ['pglz', 'lz4', 'zstd'] as const;
  const bytes: Record<string, number[]> = { pglz: [], lz4: [], zstd: [] };
  const secs: Record<string, number[]> = { pglz: [], lz4: [], zstd: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const m of modes) {
      await q(`ALTER SYSTEM SET wal_compression = '${m}'`);
      await q('SELECT pg_reload_conf()');
      await q('CHECKPOINT');
      const [{ lsn }] = await q<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn');
      const u0 = performance.now();
      await q('UPDATE bench_wal SET payload = payload WHERE id % 4 = $1', [r % 4]);
      secs[m]!.push((performance.now() - u0) / 1000);
      const [{ b }] = await q<{ b: number }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::float8 AS b', [lsn]);
      bytes[m]!.push(b);
    }
  }
  await q('ALTER SYSTEM RESET wal_compression');
  await q('SELECT pg_reload_conf()');

  const MB = (n: number) => (n / 1048576).toFixed(0);
  console.log(
    [
      `bench:archive: ${MB(written)} MB of WAL in ${burstSeconds.toFixed(1)} s (${(written / 1048576 / burstSeconds).toFixed(0)} MB/s from one session);`,
      `  archiver caught up ${lagSeconds.toFixed(2)} s after the burst; ${archived.length} segments stored in ${MB(storedBytes)} MB (${(storedBytes / written).toFixed(2)} of the WAL)`,
      `  archive script alone: ${perSegment.toFixed(0)} ms per 16 MB segment = ${(16 / (perSegment / 1000)).toFixed(0)} MB/s (${(16 / (perSegment / 1000) / (written / 1048576 / burstSeconds)).toFixed(1)}x the burst's WAL rate)`,
      `  wal_compression, UPDATE of a quarter of the table after a checkpoint, ${ROUNDS} alternating rounds, medians:`,
      ...modes.map(
        (m) =>
          `    ${m.padEnd(5)} ${MB(median(bytes[m]!)).padStart(6)} MB WAL  ${median(secs[m]!).toFixed(2).padStart(6)} s  (${(median(bytes[m]!) / median(bytes.pglz!)).toFixed(2)}x / ${(median(secs[m]!) / median(secs.pglz!)).toFixed(2)}x pglz)`,
      ),
    ].join('\n'),
  );
} finally {
  await stack.stop();
}
