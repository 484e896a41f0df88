// The failover drill: under a write load through the pooler (the
// application's connection string), kill the primary (immediate stop),
// promote a standby with `failover`, and prove what a platform team needs to
// know: with synchronous replication every commit acknowledged to a client is
// on the new primary; with asynchronous replication exactly how many were
// lost, and the lag at the moment of failure; the pooler's port serves reads
// and writes again; the roles audit is clean on the new primary. RTO is broken
// down into detect, promote, repoint and the first successful write.
import pg from 'pg';
import { auditRoles } from '../../../roles/engine/index.ts';
import { declarations } from '../../../roles/declarations.ts';
import { stopCluster } from '../cluster.ts';
import { withClient, type PgConfig } from '../db.ts';
import { badInput, describeError } from '../errors.ts';
import { failover, type FailoverResult } from '../failover.ts';
import { localPgConfig } from '../local-stack.ts';
import { poolerPid } from '../pooler.ts';
import type { Secrets } from '../secrets.ts';
import type { StackContext } from '../stack-context.ts';
import { nodeSpec, standbySpecs } from '../standby.ts';
import { withCurrentPrimary } from '../state.ts';
import type { DrillCheck, DrillReport } from './drill.ts';

export interface FailoverDrillOptions {
  /** Concurrent writers through the pooler. */
  writers?: number;
  /** Load before the kill, and after the first successful write, in ms. */
  warmupMs?: number;
  cooldownMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number) => Number((ms / 1000).toFixed(3));

/** Refuses (exit 2) a stack that cannot run the drill, before anything is touched. */
export function checkFailoverDrill(ctx: StackContext): void {
  if (!standbySpecs(ctx).length)
    throw badInput('drill --failover needs a standby to promote', 'set EDUPULSE_PG_STANDBYS=1 (or more) and run up');
  if (!ctx.settings.pooler.enabled || !poolerPid(ctx))
    throw badInput(
      "drill --failover proves the application's connection string, the pooler, and PgBouncer is not running",
      'set EDUPULSE_POOLER=on and run up',
    );
}

interface Writer {
  acked: number[];
  failures: number;
  /** performance.now() of each acknowledged commit. */
  ackedAt: number[];
}

/** One writer: a connection to the pooler, a loop of one-row transactions, reconnecting after an error. */
async function writeLoop(cfg: PgConfig, drillId: string, id: number, w: Writer, stop: { now: boolean }): Promise<void> {
  let client: pg.Client | undefined;
  let seq = 0;
  while (!stop.now) {
    try {
      if (!client) {
        client = new pg.Client({ ...cfg, connectionTimeoutMillis: 2000 });
        client.on('error', () => {});
        await client.connect();
      }
      seq++;
      // One round trip: the transaction is acknowledged when COMMIT returns, and only then remembered.
      await client.query(
        `BEGIN; SET LOCAL ROLE ${declarations.owner}; INSERT INTO edupulse_meta.failover_probes (drill_id, writer, seq) VALUES ('${drillId}', ${id}, ${seq}); COMMIT;`,
      );
      w.acked.push(seq);
      w.ackedAt.push(performance.now());
    } catch {
      w.failures++;
      await client?.end().catch(() => {});
      client = undefined;
      await sleep(20);
    }
  }
  await client?.end().catch(() => {});
}

export async function failoverDrill(
  ctx: StackContext,
  secrets: Secrets,
  opts: FailoverDrillOptions = {},
): Promise<DrillReport & { failover?: FailoverResult; lostCommits?: number; ackedCommits?: number }> {
  checkFailoverDrill(ctx);
  const startedAt = new Date();
  const id = `failover-${startedAt.toISOString().replace(/[-:.]/g, '')}`;
  const db = ctx.settings.postgres.database;
  const pooled: PgConfig = {
    host: '127.0.0.1',
    port: ctx.settings.pooler.port,
    database: db,
    user: declarations.migrator,
    password: secrets.roles[declarations.migrator]!,
  };
  const old = nodeSpec(ctx, ctx.paths.primaryNode);
  const primary = localPgConfig(ctx, secrets, db);
  const checks: DrillCheck[] = [];
  const writers: Writer[] = Array.from({ length: opts.writers ?? 4 }, () => ({ acked: [], ackedAt: [], failures: 0 }));
  const stop = { now: false };
  const loops = writers.map((w, i) => writeLoop(pooled, id, i + 1, w, stop));
  let result: FailoverResult | undefined;
  const rto: DrillReport['rto'] = { totalSeconds: 0 };
  let lagAtFailure: { bytes: number | null; seconds: number | null } = { bytes: null, seconds: null };
  try {
    await sleep(opts.warmupMs ?? 1000);
    if (!writers.some((w) => w.acked.length))
      throw new Error('no write went through the pooler before the failure (see the pooler log)');
    // The lag the failure will cost (async): what the standbys had not flushed, as the primary saw it.
    lagAtFailure = await withClient(primary, async (c) => {
      const r = (
        await c.query(
          `SELECT min(pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn))::float8 AS b, min(extract(epoch FROM flush_lag))::float8 AS s
           FROM pg_stat_replication WHERE state = 'streaming'`,
        )
      ).rows[0];
      return { bytes: r.b, seconds: r.s };
    });
    const t0 = performance.now();
    await stopCluster(old, 'immediate');
    // Detect: the first health probe of the primary that fails (every 100 ms, as a monitor would).
    for (;;) {
      const ok = await withClient({ ...primary, connectionTimeoutMillis: 500 }, (c) => c.query('SELECT 1')).then(
        () => true,
        () => false,
      );
      if (!ok) break;
      await sleep(100);
    }
    const detected = performance.now();
    rto.detectSeconds = secs(detected - t0);
    result = await failover(ctx, {});
    rto.promoteSeconds = secs(result.timings.promote);
    rto.repointSeconds = secs(result.timings.repoint);
    // The first write acknowledged once the primary was seen dead: one the new primary took, through the same
    // pooler port (one acknowledged between the kill and its effect was the old primary's).
    const deadline = performance.now() + 30_000;
    let first: number | undefined;
    while (first === undefined && performance.now() < deadline) {
      first = writers.flatMap((w) => w.ackedAt.filter((t) => t > detected)).sort((a, b) => a - b)[0];
      if (first === undefined) await sleep(20);
    }
    rto.firstWriteSeconds = first === undefined ? undefined : secs(first - t0);
    rto.totalSeconds = first === undefined ? secs(performance.now() - t0) : secs(first - t0);
    await sleep(opts.cooldownMs ?? 500);
  } finally {
    stop.now = true;
    await Promise.all(loops);
  }
  const next: StackContext = { ...ctx, paths: withCurrentPrimary(ctx.paths) };
  const newPrimary = localPgConfig(next, secrets, db);
  const acked = writers.reduce((n, w) => n + w.acked.length, 0);
  checks.push({
    name: 'pooler serves writes again',
    status: rto.firstWriteSeconds !== undefined ? 'passed' : 'failed',
    detail:
      rto.firstWriteSeconds !== undefined
        ? `first acknowledged write through port ${ctx.settings.pooler.port} ${rto.firstWriteSeconds.toFixed(3)} s after the primary died`
        : 'no write went through the pooler within 30 s of the failover',
  });
  const present = await withClient(newPrimary, async (c) => {
    const rows = (
      await c.query<{ writer: number; seq: number }>(
        'SELECT writer, seq FROM edupulse_meta.failover_probes WHERE drill_id = $1',
        [id],
      )
    ).rows;
    return new Set(rows.map((r) => `${r.writer}:${r.seq}`));
  });
  const lost = writers.reduce((n, w, i) => n + w.acked.filter((s) => !present.has(`${i + 1}:${s}`)).length, 0);
  const sync = ctx.settings.postgres.replication === 'sync';
  checks.push({
    name: 'acknowledged commits on the new primary',
    status: sync && lost > 0 ? 'failed' : 'passed',
    detail: `${acked - lost} of ${acked} acknowledged commits present, ${lost} lost (${sync ? 'synchronous: none may be' : `asynchronous: lag at the failure ${lagAtFailure.bytes ?? '-'} bytes / ${lagAtFailure.seconds ?? '-'} s`})`,
  });
  checks.push(
    await withClient(
      { ...pooled, database: db, user: declarations.reporting, password: secrets.roles[declarations.reporting]! },
      async (c) => {
        const n = (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM students')).rows[0]!.n;
        return {
          name: 'pooler serves reads again',
          status: 'passed' as const,
          detail: `students readable (${n} rows) as ${declarations.reporting}`,
        };
      },
    ).catch((err) => ({ name: 'pooler serves reads again', status: 'failed' as const, detail: describeError(err) })),
  );
  const diffs = await withClient(newPrimary, (c) => auditRoles(c));
  checks.push({
    name: 'roles and grants on the new primary',
    status: diffs.length ? 'failed' : 'passed',
    detail: diffs.length ? diffs.map((d) => d.what).join('; ') : 'as declared',
  });
  checks.push({
    name: 'old primary',
    status: result?.oldPrimary === 'rejoined' ? 'passed' : 'failed',
    detail:
      result?.oldPrimary === 'rejoined'
        ? `${result.from} rewound and streaming from ${result.to}`
        : (result?.detail ?? 'not reached'),
  });
  await withClient(newPrimary, (c) => c.query('DELETE FROM edupulse_meta.failover_probes WHERE drill_id = $1', [id]));
  return {
    id,
    kind: 'failover',
    startedAt: startedAt.toISOString(),
    target: `failover ${result?.from ?? old.name} -> ${result?.to ?? '?'} (${ctx.settings.postgres.replication})`,
    checks,
    rto,
    ...(lagAtFailure.seconds !== null ? { rpoSeconds: sync ? 0 : lagAtFailure.seconds } : {}),
    passed: checks.every((c) => c.status === 'passed'),
    ...(result ? { failover: result } : {}),
    lostCommits: lost,
    ackedCommits: acked,
  };
}
