// npm run bench:up: cold `up` (fresh state directory: initdb, start both
// servers, create the database) and warm `up` (already running: nothing to
// do), each the median of 5 runs of the real command, side by side.
import { rmSync } from 'node:fs';
import { runJob } from '../test/cli.ts';
import { tempStateDir, testEnv } from '../test/harness.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(job: string, env: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  const r = await runJob(job, [], env);
  if (r.code !== 0) throw new Error(`${job} failed: ${r.stderr}`);
  return (performance.now() - t0) / 1000;
}

const cold: number[] = [];
const warm: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const root = tempStateDir();
  rmSync(root, { recursive: true });
  const env = await testEnv(root);
  try {
    cold.push(await timed('up', env));
    warm.push(await timed('up', env));
  } finally {
    await runJob('down', [], env);
    rmSync(root, { recursive: true, force: true });
  }
}
const fmt = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' ');
console.log(`up, cold (fresh state dir): median ${median(cold).toFixed(2)} s  [${fmt(cold)}]`);
console.log(`up, warm (already running): median ${median(warm).toFixed(2)} s  [${fmt(warm)}]`);
console.log(`ratio cold/warm: ${(median(cold) / median(warm)).toFixed(1)}x`);
