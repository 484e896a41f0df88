// npm run bench:failover: the failover drill's own measure, repeated. Under a
// write load through PgBouncer (8 writers, one-row transactions), the primary
// is killed (immediate stop) and `failover` promotes the standby; measured:
// primary death to the first write acknowledged through the pooler's port,
// and acknowledged commits lost, in synchronous and asynchronous mode. Median
// of BENCH_ROUNDS (5) failovers each; every failover rewinds the old primary
// and the next one fails back. Target: <= 5 s to the first write, and zero
// acknowledged commits lost in synchronous mode.
import { failoverDrill } from '../ops-scripts/lib/drill/failover-drill.ts';
import { freePort, portFree } from '../ops-scripts/lib/ports.ts';
import { readSecrets } from '../ops-scripts/lib/secrets.ts';
import { withCurrentPrimary } from '../ops-scripts/lib/state.ts';
import { startTestStack } from '../test/harness.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const f = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(3));

const rows: string[] = [];
for (const mode of ['sync', 'async'] as const) {
  let port = await freePort();
  while (!(await portFree(port + 1))) port = await freePort();
  const stack = await startTestStack({
    env: {
      EDUPULSE_PG_STANDBYS: '1',
      EDUPULSE_PG_PORT: String(port),
      EDUPULSE_PG_REPLICATION: mode,
      EDUPULSE_POOLER: 'on',
      EDUPULSE_POOLER_PORT: String(await freePort()),
    },
  });
  try {
    const secrets = readSecrets(stack.ctx.paths.secretsFile)!;
    const runs = [];
    for (let i = 0; i < ROUNDS; i++) {
      const ctx = { ...stack.ctx, paths: withCurrentPrimary(stack.ctx.paths) };
      const r = await failoverDrill(ctx, secrets, { writers: 8, warmupMs: 2000, cooldownMs: 300 });
      if (!r.failover || r.rto.firstWriteSeconds === undefined)
        throw new Error(`round ${i + 1}: ${JSON.stringify(r.checks)}`);
      runs.push(r);
      console.log(
        `  ${mode} round ${i + 1}: ${r.failover.from} -> ${r.failover.to}: first write ${f(r.rto.firstWriteSeconds)} s ` +
          `(detect ${f(r.rto.detectSeconds)}, promote ${f(r.rto.promoteSeconds)}, repoint ${f(r.rto.repointSeconds)}); ` +
          `${r.ackedCommits} acknowledged, ${r.lostCommits} lost; old primary ${r.failover.oldPrimary}`,
      );
    }
    const lost = runs.map((r) => r.lostCommits ?? 0);
    rows.push(
      `| ${mode} | ${f(median(runs.map((r) => r.rto.firstWriteSeconds!)))} s | ${f(median(runs.map((r) => r.rto.detectSeconds!)))} / ${f(median(runs.map((r) => r.rto.promoteSeconds!)))} / ${f(median(runs.map((r) => r.rto.repointSeconds!)))} s | ${median(runs.map((r) => r.ackedCommits ?? 0))} | ${lost.join(', ')} |`,
    );
  } finally {
    await stack.stop();
  }
}
console.log(
  `\nbench:failover: median of ${ROUNDS} failovers each, 8 writers through PgBouncer (target: <= 5 s, 0 lost in sync)`,
);
console.log(
  '| replication | primary death to first write | detect / promote / repoint | acknowledged per round | lost per round |',
);
console.log('|---|---|---|---|---|');
for (const r of rows) console.log(r);
