// Hot standbys of the local stack: PostgreSQL's own streaming replication.
// The servers are nodes pg0..pgN (topology.ts); every node but the primary is
// a hot standby on its own port, streaming over its own physical replication
// slot on the primary (so the primary keeps the WAL a standby has not received
// yet) as the replicator login declared in roles/ (never the superuser). A
// standby is made by pg_basebackup; its primary_conninfo is in the managed
// configuration and its password in a passfile (0600), never in the
// configuration itself. A standby archives nothing while it is one
// (archive_mode=on archives on a primary only) and takes over archiving when
// promoted. Synchronous replication (EDUPULSE_PG_REPLICATION=sync) names the
// standbys in synchronous_standby_names once they stream, never before: a
// primary waiting for a standby that is not there yet stops every write.
import { existsSync, renameSync, rmSync, writeFileSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { declarations } from '../../roles/declarations.ts';
import { clusterRunning, configureCluster, startCluster, stopCluster, type ClusterSpec } from './cluster.ts';
import { withClient, type PgConfig } from './db.ts';
import { pgEnv } from './pg-password.ts';
import { badInput, failed, refused } from './errors.ts';
import { readSecrets } from './secrets.ts';
import { writeFileAtomic } from './files.ts';
import { run } from './run.ts';
import type { Secrets } from './secrets.ts';
import { localHba, localIdent, localParameters, primaryPort, type StackContext } from './stack-context.ts';
import {
  nodeDataDir,
  nodeLogFile,
  nodeName,
  slotName,
  standbyNodes,
  standbyReplicationParameters,
  syncStandbyNames,
} from './topology.ts';

export interface NodeSpec extends ClusterSpec {
  node: number;
  /** pg<i>: also its application_name as the primary sees it. */
  name: string;
  /** Its physical slot on whichever node is primary. */
  slot: string;
}

/** Node i of the stack: pg/data or pg/pg<i>, on the primary setting's port + i, the stack's socket directory. */
export function nodeSpec(ctx: StackContext, node: number): NodeSpec {
  return {
    node,
    name: nodeName(node),
    slot: slotName(node),
    pg: ctx.pg,
    dataDir: nodeDataDir(ctx.paths.root, node),
    socketDir: ctx.paths.socketDir,
    logFile: nodeLogFile(ctx.paths.root, node),
    port: ctx.settings.postgres.port + node,
    as: ctx.as,
    logger: ctx.logger,
  };
}

/** The standbys: every node of pg0..pgN but the primary. */
export function standbySpecs(ctx: StackContext): NodeSpec[] {
  return standbyNodes(ctx.settings.postgres.standbys, ctx.paths.primaryNode).map((i) => nodeSpec(ctx, i));
}

/** The names of the standbys the settings declare, given which node is primary (health checks each one). */
export const standbyNames = (standbys: number, primary = 0) => standbyNodes(standbys, primary).map(nodeName);

/** Where the replicator's password lives for the standbys' primary_conninfo (0600, the servers' OS user). */
export const replicationPassfile = (ctx: StackContext) => join(ctx.paths.root, 'pg', 'replication.pgpass');

const pgpassField = (v: string) => v.replace(/\\/g, '\\\\').replace(/:/g, '\\:');

function writePassfile(ctx: StackContext, password: string): void {
  const content = `# Written by edupulse-db: the replication login's password, for the standbys.\n*:*:*:${declarations.replicator}:${pgpassField(password)}\n`;
  writeFileAtomic(replicationPassfile(ctx), content, { mode: 0o600, ...(ctx.as ? { owner: ctx.as } : {}) });
}

/**
 * After the replication login's password changed (roles:rotate): the standbys' passfile gets the new one, so
 * their next connection to the primary (a restart, a network blip) authenticates. Returns whether it was written.
 */
export function refreshReplicationPassfile(ctx: StackContext, secrets: Secrets): boolean {
  const password = secrets.roles[declarations.replicator];
  if (!password || !existsSync(replicationPassfile(ctx))) return false;
  writePassfile(ctx, password);
  return true;
}

/** A standby's parameters: the primary's settings, its own port and name, and where it streams from. */
export function standbyParameters(ctx: StackContext, s: NodeSpec, primaryPort: number): Record<string, string> {
  return {
    ...localParameters(ctx),
    port: String(s.port),
    ...standbyReplicationParameters(s.node, { host: '127.0.0.1', port: primaryPort }, replicationPassfile(ctx)),
  };
}

/**
 * The primary's synchronous_standby_names, by ALTER SYSTEM (reloaded, so no
 * restart): in sync mode the standbys that stream now, else ''. Returns the
 * value when it changed.
 */
export async function setSyncStandbys(primary: PgConfig, names: string[]): Promise<string | undefined> {
  return withClient(primary, async (c) => {
    const want = syncStandbyNames(names);
    const { rows } = await c.query<{ setting: string }>(
      `SELECT setting FROM pg_settings WHERE name = 'synchronous_standby_names'`,
    );
    if (rows[0]?.setting === want) return undefined;
    await c.query(
      want ? `ALTER SYSTEM SET synchronous_standby_names = '${want}'` : 'ALTER SYSTEM RESET synchronous_standby_names',
    );
    await c.query('SELECT pg_reload_conf()');
    // The postmaster and then the checkpointer/backends pick it up: wait until this session sees it.
    for (let i = 0; i < 200; i++) {
      const now = (await c.query<{ s: string }>(`SELECT current_setting('synchronous_standby_names') AS s`)).rows[0]!.s;
      if (now === want) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    return want;
  });
}

/** Makes a standby's data directory from the primary, over its slot, into a scratch directory renamed when whole. */
export async function makeStandby(ctx: StackContext, s: NodeSpec, primary: PgConfig, password: string): Promise<void> {
  // A killed or failed copy never looks like a standby, and the slot it made goes again (a slot nobody
  // reads would hold the primary's WAL forever).
  const scratch = `${s.dataDir}.init`;
  rmSync(scratch, { recursive: true, force: true });
  const created = await ensureSlot(primary, s.slot);
  try {
    await run(
      ctx.pg.bin('pg_basebackup'),
      ['-D', scratch, '-S', s.slot, '-X', 'stream', '-c', 'fast', '-d', `application_name=${s.name}`],
      {
        as: ctx.as,
        env: pgEnv({ ...primary, user: declarations.replicator, password, database: 'postgres' }),
        logger: ctx.logger,
        dieWithParent: true,
      },
    );
    markStandby(ctx, scratch);
    renameSync(scratch, s.dataDir);
  } catch (err) {
    rmSync(scratch, { recursive: true, force: true });
    if (created)
      await withClient(primary, (c) => c.query('SELECT pg_drop_replication_slot($1)', [s.slot])).catch(() => {});
    throw err;
  }
}

/** standby.signal: the server starts as a standby (its primary_conninfo is in the managed configuration). */
export function markStandby(ctx: StackContext, dataDir: string): void {
  const f = join(dataDir, 'standby.signal');
  writeFileSync(f, '', { mode: 0o600 });
  if (ctx.as) chownSync(f, ctx.as.uid, ctx.as.gid);
}

/** Creates the physical slot on the primary when missing; true when it made it. */
export async function ensureSlot(primary: PgConfig, slot: string): Promise<boolean> {
  return withClient(
    primary,
    async (c) =>
      (
        await c.query(
          `SELECT pg_create_physical_replication_slot($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
          [slot],
        )
      ).rowCount === 1,
  );
}

/** Creates (pg_basebackup over its slot) and starts each declared standby; returns what it did, per standby. */
export async function upStandbys(
  ctx: StackContext,
  primary: PgConfig,
  secrets: Secrets,
): Promise<Array<{ name: string; status: 'done' | 'skipped'; detail: string }>> {
  const out: Array<{ name: string; status: 'done' | 'skipped'; detail: string }> = [];
  const password = secrets.roles[declarations.replicator];
  if (!password) throw failed(`no password for ${declarations.replicator} in the secrets file`, 'run up again');
  const specs = standbySpecs(ctx);
  out.push(...(await retireLegacyStandbys(ctx, primary)));
  if (specs.length) writePassfile(ctx, password);
  const primaryPort = primary.port!;
  for (const s of specs) {
    let made = false;
    if (!existsSync(s.dataDir)) {
      await makeStandby(ctx, s, primary, password);
      made = true;
    } else await ensureSlot(primary, s.slot);
    const changed = configureCluster(s, {
      params: standbyParameters(ctx, s, primaryPort),
      hba: localHba(),
      ident: localIdent(ctx),
    });
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
  // Only now, with every standby streaming, may the primary wait for one of them.
  const sync = await setSyncStandbys(
    primary,
    ctx.settings.postgres.replication === 'sync' ? specs.map((s) => s.name) : [],
  );
  if (sync !== undefined)
    out.push({
      name: 'replication',
      status: 'done',
      detail: sync ? `synchronous: synchronous_standby_names = '${sync}'` : 'asynchronous',
    });
  return out;
}

/**
 * Standbys made before nodes were named pg<i> lived in pg/standby<i> with slot edupulse_standby<i> (one
 * release): each is stopped, its slot dropped (it would hold the primary's WAL forever), then its directory
 * removed (a standby is a copy of the primary, made again as pg<i>). The directory goes last, so a slot never
 * outlives it; no directory, nothing to do and no connection made.
 */
async function retireLegacyStandbys(
  ctx: StackContext,
  primary: PgConfig,
): Promise<Array<{ name: string; status: 'done'; detail: string }>> {
  const out: Array<{ name: string; status: 'done'; detail: string }> = [];
  for (let i = 1; i <= 3; i++) {
    const dataDir = join(ctx.paths.root, 'pg', `standby${i}`);
    if (!existsSync(dataDir)) continue;
    const slot = `edupulse_standby${i}`;
    await stopCluster({ ...nodeSpec(ctx, i), dataDir }, 'fast');
    // Its walsender lets go of the slot a moment after the stop.
    await withClient(primary, async (c) => {
      for (let n = 0; n < 100; n++) {
        const { rows } = await c.query<{ active: boolean }>(
          'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
          [slot],
        );
        if (!rows.length) return;
        if (!rows[0]!.active) {
          await c.query('SELECT pg_drop_replication_slot($1)', [slot]);
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw failed(`the old standby's slot ${slot} is still in use after it stopped`, 'run up again');
    });
    rmSync(dataDir, { recursive: true, force: true });
    out.push({
      name: `standby${i}`,
      status: 'done',
      detail: `retired the old-layout standby (pg/standby${i}, slot ${slot}); made again as ${nodeName(i)} if declared`,
    });
  }
  return out;
}

/** Waits (bounded) until the primary sees the standby streaming: the server accepting connections is not yet that. */
export async function awaitStreaming(primary: PgConfig, s: NodeSpec, timeoutMs = 30_000): Promise<void> {
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

/**
 * The standby a backup is read from: `name`, or the first that streams. Bad input when the stack has no such
 * standby, refused when it is not streaming (a backup from a standby that stopped following would be stale).
 */
export async function pickBackupStandby(ctx: StackContext, name?: string): Promise<{ name: string; port: number }> {
  const specs = standbySpecs(ctx);
  if (!specs.length)
    throw badInput(
      'backup --from-standby: the stack has no standby; nothing was taken',
      'declare one with EDUPULSE_PG_STANDBYS=1 and run up, or back up the primary',
    );
  const candidates = name === undefined ? specs : specs.filter((s) => s.name === name);
  if (!candidates.length)
    throw badInput(
      `backup --from-standby ${name}: no such standby; nothing was taken`,
      `use one of ${specs.map((s) => s.name).join(', ')}`,
    );
  const secrets = readSecrets(ctx.paths.secretsFile);
  const streaming = secrets
    ? await withClient(
        {
          host: '127.0.0.1',
          port: primaryPort(ctx),
          user: secrets.postgres.superuser,
          password: secrets.postgres.password,
          database: 'postgres',
        },
        async (c) =>
          (
            await c.query<{ n: string }>(
              `SELECT application_name AS n FROM pg_stat_replication WHERE state = 'streaming'`,
            )
          ).rows.map((r) => r.n),
      ).catch(() => [] as string[])
    : [];
  const s = candidates.find((x) => streaming.includes(x.name));
  if (!s)
    throw refused(
      `backup --from-standby: ${candidates.map((x) => x.name).join(', ')} ${candidates.length > 1 ? 'are' : 'is'} not streaming from the primary; nothing was taken`,
      'see status; back up the primary instead (without --from-standby)',
    );
  return { name: s.name, port: s.port };
}

/** A standby of the old layout (pg/standby<i>) running on node i's port: ours, retired by up. */
export const legacyStandbyRunning = (ctx: StackContext, i: number) =>
  clusterRunning({ dataDir: join(ctx.paths.root, 'pg', `standby${i}`) });

/** Stops every standby the stack holds. */
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
