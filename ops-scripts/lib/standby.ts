// Hot standbys of the local stack: PostgreSQL's own streaming replication,
// one physical replication slot per standby (so the primary keeps the WAL a
// standby has not received yet), each made by pg_basebackup -R as the
// replicator login declared in roles/ (never the superuser) and run as a hot
// standby on its own port (TCP only). A standby archives nothing while it is
// one (archive_mode=on archives on a primary only) and takes over archiving
// if promoted. `up` creates and starts them, `down` stops them, `status`
// reports each one's state, replay lag and what its slot holds back.
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { declarations } from '../../roles/declarations.ts';
import { clusterRunning, configureCluster, startCluster, stopCluster, type ClusterSpec } from './cluster.ts';
import { withClient, type PgConfig } from './db.ts';
import { pgEnv } from './pg-password.ts';
import { failed } from './errors.ts';
import { run } from './run.ts';
import type { Secrets } from './secrets.ts';
import { localHba, localIdent, localParameters, type StackContext } from './stack-context.ts';

export interface StandbySpec extends ClusterSpec {
  name: string;
  slot: string;
}

/** The names of N standbys: standby1..N (also each one's application_name as the primary sees it). */
export const standbyNames = (count: number) => Array.from({ length: count }, (_, i) => `standby${i + 1}`);

/** The standbys the settings declare: standby1..N, on the primary's port + 1..N. */
export function standbySpecs(ctx: StackContext): StandbySpec[] {
  return standbyNames(ctx.settings.postgres.standbys).map((name, i) => {
    return {
      name,
      slot: `edupulse_${name}`,
      pg: ctx.pg,
      dataDir: join(ctx.paths.root, 'pg', name),
      logFile: join(ctx.paths.logDir, `${name}.log`),
      port: ctx.settings.postgres.port + i + 1,
      as: ctx.as,
      logger: ctx.logger,
    };
  });
}

/** A standby's own parameters: the primary's settings, its port, TCP only, a hot standby named for the primary. */
function standbyParameters(ctx: StackContext, s: StandbySpec): Record<string, string> {
  const { unix_socket_directories: _socket, unix_socket_permissions: _perm, ...params } = localParameters(ctx);
  return {
    ...params,
    port: String(s.port),
    unix_socket_directories: '',
    hot_standby: 'on',
    cluster_name: s.name,
  };
}

/** Creates (pg_basebackup -R over its slot) and starts each declared standby; returns what it did, per standby. */
export async function upStandbys(
  ctx: StackContext,
  primary: PgConfig,
  secrets: Secrets,
): Promise<Array<{ name: string; status: 'done' | 'skipped'; detail: string }>> {
  const out: Array<{ name: string; status: 'done' | 'skipped'; detail: string }> = [];
  const password = secrets.roles[declarations.replicator];
  for (const s of standbySpecs(ctx)) {
    let made = false;
    if (!existsSync(s.dataDir)) {
      // Into a scratch directory renamed when whole: a killed or failed copy never looks like a standby, and
      // the slot it made goes again (a slot nobody reads would hold the primary's WAL forever).
      const scratch = `${s.dataDir}.init`;
      rmSync(scratch, { recursive: true, force: true });
      const created = await withClient(
        primary,
        async (c) =>
          (
            await c.query(
              `SELECT pg_create_physical_replication_slot($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
              [s.slot],
            )
          ).rowCount === 1,
      );
      try {
        // -R writes standby.signal and primary_conninfo (0600, in the standby's own data directory), -S the slot.
        await run(
          ctx.pg.bin('pg_basebackup'),
          ['-D', scratch, '-R', '-S', s.slot, '-X', 'stream', '-c', 'fast', '-d', `application_name=${s.name}`],
          {
            as: ctx.as,
            env: pgEnv({ ...primary, user: declarations.replicator, password, database: 'postgres' }),
            logger: ctx.logger,
            dieWithParent: true,
          },
        );
        renameSync(scratch, s.dataDir);
      } catch (err) {
        rmSync(scratch, { recursive: true, force: true });
        if (created)
          await withClient(primary, (c) => c.query('SELECT pg_drop_replication_slot($1)', [s.slot])).catch(() => {});
        throw err;
      }
      made = true;
    }
    const changed = configureCluster(s, { params: standbyParameters(ctx, s), hba: localHba(), ident: localIdent(ctx) });
    if (await clusterRunning(s)) {
      if (changed) {
        await stopCluster(s, 'fast');
        await startCluster(s);
        await awaitStreaming(primary, s);
      }
      out.push({
        name: s.name,
        status: changed ? 'done' : 'skipped',
        detail: changed ? `restarted with changed settings on port ${s.port}` : `already streaming on port ${s.port}`,
      });
      continue;
    }
    await startCluster(s);
    await awaitStreaming(primary, s);
    out.push({
      name: s.name,
      status: 'done',
      detail: `${made ? `made by pg_basebackup over slot ${s.slot} as ${declarations.replicator}, ` : ''}started as a hot standby on port ${s.port}`,
    });
  }
  return out;
}

/** Waits (bounded) until the primary sees the standby streaming: the server accepting connections is not yet that. */
async function awaitStreaming(primary: PgConfig, s: StandbySpec, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await withClient(primary, async (c) => {
    for (;;) {
      const { rowCount } = await c.query(
        `SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`,
        [s.name],
      );
      if (rowCount) return;
      if (Date.now() > deadline)
        throw failed(
          `standby ${s.name} started on port ${s.port} but is not streaming from the primary after ${timeoutMs / 1000} s`,
          `see ${s.logFile}`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  });
}

/** Stops every standby directory the stack holds (declared or left from a larger setting). */
export async function downStandbys(ctx: StackContext): Promise<string[]> {
  const stopped: string[] = [];
  for (const s of standbySpecs(ctx)) if (await stopCluster(s, 'fast')) stopped.push(s.name);
  return stopped;
}

export interface StandbyStatus {
  name: string;
  port: number;
  running: boolean;
  /** As the primary sees it (pg_stat_replication), when connected. */
  state?: string;
  syncState?: string;
  replayLagBytes?: number;
  replayLagSeconds?: number | null;
  /** WAL the standby's slot keeps on the primary (bytes from its restart_lsn to now). */
  slotRetainedBytes?: number;
}

export async function standbyStatus(ctx: StackContext, primary: PgConfig): Promise<StandbyStatus[]> {
  const specs = standbySpecs(ctx);
  if (!specs.length) return [];
  const rows = await withClient(primary, async (c) => {
    const repl = (
      await c.query(
        `SELECT application_name, state, sync_state,
           pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS lag_bytes,
           extract(epoch FROM replay_lag)::float8 AS lag_seconds
         FROM pg_stat_replication`,
      )
    ).rows;
    const slots = (
      await c.query(
        `SELECT slot_name, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained FROM pg_replication_slots`,
      )
    ).rows;
    return { repl, slots };
  });
  const out: StandbyStatus[] = [];
  for (const s of specs) {
    const r = rows.repl.find((x) => x.application_name === s.name);
    const slot = rows.slots.find((x) => x.slot_name === s.slot);
    out.push({
      name: s.name,
      port: s.port,
      running: await clusterRunning(s),
      ...(r
        ? {
            state: r.state,
            syncState: r.sync_state,
            replayLagBytes: Number(r.lag_bytes ?? 0),
            replayLagSeconds: r.lag_seconds,
          }
        : {}),
      ...(slot ? { slotRetainedBytes: Number(slot.retained ?? 0) } : {}),
    });
  }
  return out;
}
