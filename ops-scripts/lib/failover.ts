// Switchover and failover of the local stack: promote a standby with
// pg_promote, record it (topology.ts: every job follows the new primary),
// repoint PgBouncer by a reload, repoint the other standbys, and make the old
// primary a standby of the new one with pg_rewind (checksums are on, which
// pg_rewind needs) or report that it must be rebuilt. A running old primary
// is stopped cleanly first (a switchover: its last WAL reaches the standby
// and nothing is lost); a dead one is rewound from its crashed state (a
// failover). No consensus, no fencing across machines: that is Patroni's or
// CloudNativePG's job (README, "Failover").
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { clusterRunning, configureCluster, reloadCluster, startCluster, stopCluster } from './cluster.ts';
import { withClient, type PgConfig } from './db.ts';
import { badInput, failed, refused } from './errors.ts';
import { localPgConfig } from './local-stack.ts';
import { pgEnv } from './pg-password.ts';
import { poolerPid, upPooler } from './pooler.ts';
import { run, tail } from './run.ts';
import { readSecrets, type Secrets } from './secrets.ts';
import { localHba, localIdent, localParameters, type StackContext } from './stack-context.ts';
import {
  awaitStreaming,
  ensureSlot,
  markStandby,
  nodeSpec,
  setSyncStandbys,
  standbyParameters,
  standbySpecs,
  type NodeSpec,
} from './standby.ts';
import { withCurrentPrimary } from './state.ts';
import { NODE_NAME_RE, nodeName, readTopology, writeTopology, type FailoverRecord } from './topology.ts';

export interface FailoverOptions {
  to?: string;
  force?: boolean;
  /** Refuse a standby lagging more than this many bytes (default: the health check's warn threshold). */
  maxLagBytes?: number;
}

export interface FailoverResult extends FailoverRecord {
  /** Milliseconds of each phase. */
  timings: { stopOld: number; promote: number; repoint: number; rejoin: number };
  /** synchronous_standby_names on the new primary afterwards ('' while no standby streams). */
  syncStandbys: string;
  pooler: 'reloaded' | 'not running';
}

const ms = (t0: number) => Math.round(performance.now() - t0);

/** The connection to node i as the superuser (TCP, its own port). */
const nodeConfig = (ctx: StackContext, secrets: Secrets, s: NodeSpec, database = 'postgres'): PgConfig => ({
  ...localPgConfig(ctx, secrets, database),
  port: s.port,
  connectionTimeoutMillis: 3000,
});

async function reachable(cfg: PgConfig): Promise<boolean> {
  return withClient(cfg, async (c) => (await c.query('SELECT 1')).rowCount === 1).catch(() => false);
}

/** Validates everything failover needs before any change; returns the candidate. */
export async function planFailover(
  ctx: StackContext,
  secrets: Secrets,
  opts: FailoverOptions,
): Promise<{ candidate: NodeSpec; old: NodeSpec; oldUp: boolean; lagBytes: number | null }> {
  const standbys = standbySpecs(ctx).filter((s) => existsSync(s.dataDir));
  if (!standbys.length)
    throw badInput(
      'there is no standby to promote; nothing was changed',
      'declare standbys with EDUPULSE_PG_STANDBYS=1 (or more) and run up',
    );
  let candidates = standbys;
  if (opts.to !== undefined) {
    if (!NODE_NAME_RE.test(opts.to) || !standbys.some((s) => s.name === opts.to))
      throw badInput(
        `--to ${opts.to}: no such standby; nothing was changed`,
        `use one of ${standbys.map((s) => s.name).join(', ')} (${nodeName(ctx.paths.primaryNode)} is the primary)`,
      );
    candidates = standbys.filter((s) => s.name === opts.to);
  }
  const old = nodeSpec(ctx, ctx.paths.primaryNode);
  const oldUp = (await clusterRunning(old)) && (await reachable(nodeConfig(ctx, secrets, old)));
  const running = [];
  for (const s of candidates) if (await clusterRunning(s)) running.push(s);
  if (!running.length)
    throw refused(
      `${candidates.map((s) => s.name).join(', ')} ${candidates.length > 1 ? 'are' : 'is'} not running: nothing to promote; nothing was changed`,
      'start the standbys with up, then fail over',
    );
  const threshold = opts.maxLagBytes ?? ctx.settings.maintenance.health.replicationLagBytes[0];
  if (oldUp) {
    // The primary's view: replay lag of each candidate, in bytes of WAL.
    const repl = await withClient(
      nodeConfig(ctx, secrets, old),
      async (c) =>
        (
          await c.query<{ name: string; state: string; lag: number }>(
            `SELECT application_name AS name, state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS lag
           FROM pg_stat_replication`,
          )
        ).rows,
    );
    const scored = running
      .map((s) => ({ s, r: repl.find((x) => x.name === s.name) }))
      .sort((a, b) => (a.r?.lag ?? Infinity) - (b.r?.lag ?? Infinity));
    const best = scored[0]!;
    if (!best.r || best.r.state !== 'streaming') {
      if (!opts.force)
        throw refused(
          `${best.s.name} is not streaming from the primary (${best.r?.state ?? 'not connected'}): promoting it could lose everything since it stopped; nothing was changed`,
          'find out why it is not streaming (status, its log), or pass --force to promote it anyway',
        );
      return { candidate: best.s, old, oldUp, lagBytes: null };
    }
    const lag = Number(best.r.lag);
    if (lag > threshold && !opts.force)
      throw refused(
        `${best.s.name} is ${lag} bytes behind the primary (more than ${threshold}); nothing was changed`,
        'wait for it to catch up (status shows the lag), or pass --force',
      );
    return { candidate: best.s, old, oldUp, lagBytes: lag };
  }
  // The primary is down: the standby that received the most WAL.
  const received = [];
  for (const s of running) {
    const lsn = await withClient(
      nodeConfig(ctx, secrets, s),
      async (c) =>
        (
          await c.query<{ n: number }>(
            `SELECT pg_wal_lsn_diff(coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), '0/0')::float8 AS n`,
          )
        ).rows[0]!.n,
    ).catch(() => -1);
    received.push({ s, lsn: Number(lsn) });
  }
  received.sort((a, b) => b.lsn - a.lsn);
  if (received[0]!.lsn < 0) throw failed(`no standby answers: ${running.map((s) => s.name).join(', ')}`);
  return { candidate: received[0]!.s, old, oldUp, lagBytes: null };
}

/** The stack as it is once `primary` is the primary: paths re-read from the topology just written. */
const asPrimary = (ctx: StackContext): StackContext => ({ ...ctx, paths: withCurrentPrimary(ctx.paths) });

export async function failover(ctx: StackContext, opts: FailoverOptions): Promise<FailoverResult> {
  const secrets = readSecrets(ctx.paths.secretsFile);
  if (!secrets) throw badInput(`no secrets file (${ctx.paths.secretsFile})`, 'run up first');
  const { candidate, old, oldUp, lagBytes } = await planFailover(ctx, secrets, opts);
  const timings = { stopOld: 0, promote: 0, repoint: 0, rejoin: 0 };
  let t = performance.now();
  if (oldUp) {
    // A clean stop: the checkpoint it writes last is streamed to the standbys before it exits.
    await stopCluster(old, 'fast');
    const end = checkpointLsn(ctx, old);
    await withClient(nodeConfig(ctx, secrets, candidate), async (c) => {
      const deadline = Date.now() + 30_000;
      while (
        (await c.query<{ ok: boolean }>(`SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok`, [end])).rows[0]!.ok !==
        true
      ) {
        if (Date.now() > deadline)
          throw failed(
            `${candidate.name} did not replay the old primary's last WAL (${end}) within 30 s`,
            `see ${candidate.logFile}`,
          );
        await new Promise((r) => setTimeout(r, 20));
      }
    });
  }
  timings.stopOld = ms(t);
  t = performance.now();
  const timeline = await withClient(nodeConfig(ctx, secrets, candidate), async (c) => {
    const { rows } = await c.query<{ ok: boolean }>('SELECT pg_promote(true, 60) AS ok');
    if (!rows[0]!.ok)
      throw failed(`${candidate.name} did not finish promotion within 60 s`, `see ${candidate.logFile}`);
    return parseInt(
      (await c.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f')).rows[0]!.f.slice(0, 8),
      16,
    );
  }).catch(async (err: unknown) => {
    // A switchover whose promotion failed: the old primary, stopped cleanly for it, is started again as it was,
    // but only while the standby is certainly still one (two primaries would be worse than none).
    const stillStandby = await withClient(nodeConfig(ctx, secrets, candidate), async (c) =>
      Boolean((await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r),
    ).catch(() => false);
    if (oldUp && stillStandby) await startCluster(old).catch(() => {});
    throw err;
  });
  // Recorded at once: from here every job reaches the new primary.
  const topology = readTopology(ctx.paths.root);
  writeTopology(ctx.paths.root, { ...topology, primary: candidate.node }, ctx.as);
  const next = asPrimary(ctx);
  timings.promote = ms(t);
  t = performance.now();
  // The new primary's own configuration (no primary_conninfo), reloaded; slots for its standbys.
  configureCluster(candidate, { params: localParameters(next), hba: localHba(), ident: localIdent(next) });
  await reloadCluster(candidate);
  const primaryCfg = nodeConfig(next, secrets, candidate);
  // Writes first: no standby streams from it yet, so synchronous replication waits for none until one does.
  await setSyncStandbys(primaryCfg, []);
  const pooler = poolerPid(next)
    ? (await upPooler(next, candidate.port), 'reloaded' as const)
    : ('not running' as const);
  for (const s of standbySpecs(next)) {
    if (s.node === old.node) continue;
    await ensureSlot(primaryCfg, s.slot);
    configureCluster(s, {
      params: standbyParameters(next, s, candidate.port),
      hba: localHba(),
      ident: localIdent(next),
    });
    if (await clusterRunning(s)) await reloadCluster(s);
  }
  timings.repoint = ms(t);
  t = performance.now();
  let oldPrimary: FailoverRecord['oldPrimary'] = 'needs-rebuild';
  let detail: string | undefined;
  try {
    await rejoin(next, secrets, old, candidate);
    oldPrimary = 'rejoined';
  } catch (err) {
    detail = `${old.name} could not be rewound (${(err as Error).message.split('\n')[0]}): remove ${old.dataDir} and run up to rebuild it from ${candidate.name}`;
  }
  timings.rejoin = ms(t);
  const streaming = await withClient(primaryCfg, async (c) =>
    (
      await c.query<{ n: string }>(`SELECT application_name AS n FROM pg_stat_replication WHERE state = 'streaming'`)
    ).rows.map((r) => r.n),
  );
  if (ctx.settings.postgres.replication === 'sync') await setSyncStandbys(primaryCfg, streaming);
  const syncStandbys = await withClient(
    primaryCfg,
    async (c) => (await c.query<{ s: string }>(`SELECT current_setting('synchronous_standby_names') AS s`)).rows[0]!.s,
  );
  const record: FailoverRecord = {
    at: new Date().toISOString(),
    from: old.name,
    to: candidate.name,
    kind: oldUp ? 'switchover' : 'failover',
    forced: Boolean(opts.force),
    lagBytes,
    timeline,
    oldPrimary,
    ...(detail ? { detail } : {}),
  };
  writeTopology(ctx.paths.root, { primary: candidate.node, history: [...topology.history, record] }, ctx.as);
  return { ...record, timings, syncStandbys, pooler };
}

/** "Latest checkpoint location" of a stopped cluster, by pg_controldata. */
function checkpointLsn(ctx: StackContext, s: NodeSpec): string {
  const r = spawnSync(ctx.pg.bin('pg_controldata'), [s.dataDir], {
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C' },
  });
  const m = /Latest checkpoint location:\s+(\S+)/.exec(r.stdout ?? '');
  if (r.status !== 0 || !m) throw failed(`pg_controldata ${s.dataDir} failed: ${r.stderr}`);
  return m[1]!;
}

/**
 * The old primary as a standby of the new one: pg_rewind (which first finishes crash recovery of a server that
 * died), standby.signal, the standby configuration, its slot on the new primary, started and streaming.
 */
async function rejoin(ctx: StackContext, secrets: Secrets, old: NodeSpec, primary: NodeSpec): Promise<void> {
  if (!existsSync(join(old.dataDir, 'PG_VERSION'))) throw failed(`${old.dataDir} is not a data directory`);
  if (await clusterRunning(old)) await stopCluster(old, 'immediate');
  // pg_rewind before PostgreSQL 16 reads the source's timeline from its control file, which a promotion
  // updates only at the next checkpoint: without one it rewinds to the old timeline and the result cannot start.
  await withClient(nodeConfig(ctx, secrets, primary), (c) => c.query('CHECKPOINT'));
  const r = await run(
    ctx.pg.bin('pg_rewind'),
    [
      '--target-pgdata',
      old.dataDir,
      '--source-server',
      `host=127.0.0.1 port=${primary.port} dbname=postgres`,
      // Segments the old primary recycled since the last common checkpoint come from the archive.
      ...(ctx.settings.backup.encryption.recipients.length ? [] : ['--restore-target-wal']),
    ],
    {
      as: ctx.as,
      env: { ...pgEnv({ ...localPgConfig(ctx, secrets, 'postgres'), port: primary.port }), LC_ALL: 'C' },
      logger: ctx.logger,
      nothrow: true,
      dieWithParent: true,
    },
  );
  if (r.code !== 0) throw failed(`pg_rewind exited ${r.code}: ${tail(r.stderr, 3)}`);
  const primaryCfg = nodeConfig(ctx, secrets, primary);
  await ensureSlot(primaryCfg, old.slot);
  markStandby(ctx, old.dataDir);
  configureCluster(old, { params: standbyParameters(ctx, old, primary.port), hba: localHba(), ident: localIdent(ctx) });
  await startCluster(old);
  await awaitStreaming(primaryCfg, old);
}
