// Point-in-time restore into a new data directory: pick the newest physical
// backup that ended at or before the target (or the named one), extract it,
// point restore_command at the repository's wal/, set the recovery target,
// and (with start) start it and wait until it is promoted (or paused).
// Never over a live or non-empty directory; archiving is off in the restored
// cluster so it can never write into the live archive.
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { findPgBinaries, type PgBinaries } from '../binaries.ts';
import type { BackupContext } from '../backup/context.ts';
import { extractBaseBackup } from '../backup/extract.ts';
import { sha256File, type BackupRecord } from '../backup/repository.ts';
import { checkArchive, parseLsn, parseSegment, SEGMENT_RE } from '../backup/wal.ts';
import { clusterRunning, postmasterPid, renderConf, startCluster, stopCluster, type ClusterSpec } from '../cluster.ts';
import { withClient, type PgConfig } from '../db.ts';
import { badInput, describeError, failed, refused, ToolkitError } from '../errors.ts';
import { processAlive } from '../process.ts';
import { checkReachableBy } from '../stack-context.ts';
import { tail } from '../run.ts';
import { freePort, portFree } from '../ports.ts';
import type { PhaseProgress } from '../progress.ts';
import { localCatalog, type Catalog } from './catalog.ts';
import { commitsAround, resolveTime, type CommitsAround, type ResolvedTime } from './commits.ts';
import { describeTarget, targetParameters, type RecoveryTarget } from './target.ts';

export interface RestoreOptions {
  target: RecoveryTarget;
  to: string;
  backupId?: string;
  port?: number;
  start?: boolean;
  pause?: boolean;
  /** The live cluster's data directory, which is never a target. */
  liveDataDir?: string;
  /** Other live directories a target may not be inside or contain (the repository, the state's parts), by what they are. */
  protectedDirs?: Record<string, string>;
  /** Superuser credentials (the restored cluster has the backup's roles). */
  superuser: { user: string; password: string };
  timeoutSeconds?: number;
  /** Where backups and WAL come from: the local repository by default, or the object store. */
  catalog?: Catalog;
  /** Where a failed restore's server log is kept (the state's logs directory). */
  logDir?: string;
  /**
   * Called when a time target is newer than the archived WAL ("restore to just
   * now"): switch the live server's segment and wait for it to be archived.
   */
  archiveNow?: () => Promise<void>;
  /** Hears each phase's progress (extract: bytes unpacked; replay: WAL bytes replayed of those to replay). */
  onProgress?: (p: PhaseProgress) => void;
}

export interface RestoreResult {
  backup: { id: string; endedAt: string; stopLsn: string; major: number };
  target: string;
  dataDir: string;
  port: number;
  promoted: boolean;
  paused: boolean;
  timings: { chooseSeconds: number; extractSeconds: number; replaySeconds?: number; promoteSeconds?: number };
  replayedWalBytes?: number;
  lastReplayedCommit?: string | null;
  /** The recovery target given to PostgreSQL, when it differs from the one asked for (see quiet). */
  recoveredTo?: string;
  /** Set when nothing was committed after a time target: how the exact stop point was found. */
  quiet?: ResolvedTime['quiet'];
  /** For a time target: the transaction ends the archived WAL holds around it (pg_waldump), the evidence a drill checks. */
  walEvidence?: {
    atOrBefore?: { time: string; lsn: string; micros: string };
    after?: { time: string; lsn: string; micros: string };
    through?: string;
  };
  /** The last replayed transaction end, in microseconds since the epoch (exact, unlike lastReplayedCommit). */
  lastReplayedMicros?: string | null;
  spec: ClusterSpec;
}

/**
 * The backup a target restores from: the named one (refused if unknown or
 * ended after the target) or the newest that ended at or before it (refused if
 * the target precedes every backup). Bad input, before anything is done.
 */
export function pickBackup(catalog: Catalog, target: RecoveryTarget, backupId?: string): BackupRecord {
  const all = catalog.backups;
  if (!all.length)
    throw badInput(
      `the ${catalog.source} repository holds no physical backup`,
      'take one with `npm run backup -- --type physical`',
    );
  let limitLsn: bigint | undefined;
  if (target.kind === 'name') {
    const point = catalog.restorePoints.find((p) => p.name === target.name);
    if (!point)
      throw badInput(
        `no restore point named "${target.name}"`,
        'see restore-points.json in the repository; make one with backup:mark',
      );
    limitLsn = parseLsn(point.lsn);
  }
  if (target.kind === 'lsn') limitLsn = parseLsn(target.lsn);
  const fits = (r: BackupRecord) =>
    target.kind === 'time'
      ? Date.parse(r.physical!.endedAt) <= target.time.getTime()
      : limitLsn !== undefined
        ? parseLsn(r.physical!.stopLsn) <= limitLsn
        : true;
  let chosen: BackupRecord | undefined;
  if (backupId) {
    chosen = all.find((r) => r.id === backupId);
    if (!chosen) throw badInput(`no complete physical backup with id ${backupId}`, 'see backup:list');
    if (!fits(chosen))
      throw badInput(
        `backup ${backupId} ended (${chosen.physical!.endedAt}, ${chosen.physical!.stopLsn}) after the target ${describeTarget(target)}`,
        'choose an older backup, or leave --backup out',
      );
  } else {
    chosen = [...all].reverse().find(fits);
    if (!chosen) {
      throw badInput(
        `the target ${describeTarget(target)} is before the end of the oldest backup (${all[0]!.id}, ended ${all[0]!.physical!.endedAt}, ${all[0]!.physical!.stopLsn})`,
        'choose a later target',
      );
    }
  }
  return chosen;
}

/** The backup to restore from, and the checks that the target is reachable from it. */
export function chooseBackup(
  catalog: Catalog,
  target: RecoveryTarget,
  backupId?: string,
  now = new Date(),
): BackupRecord {
  const chosen = pickBackup(catalog, target, backupId);
  // The upper end: what the archive holds.
  const seg = chosen.server.walSegmentBytes;
  const archive = checkArchive(
    catalog.walFiles,
    catalog.histories,
    parseSegment(chosen.physical!.startSegment, seg)!,
    seg,
  );
  const newest = archive.newest;
  const newestTime = newest ? catalog.walTime(newest.name) : undefined;
  if (target.kind === 'time') {
    if (target.time > now)
      throw badInput(
        `the target ${target.time.toISOString()} is in the future`,
        `the newest recoverable point is about ${newestTime ?? chosen.physical!.endedAt}`,
      );
    // Object stores keep LastModified to the second: a second of slack for them.
    if (newestTime && target.time.getTime() > Date.parse(newestTime) + (catalog.source === 'remote' ? 1000 : 0)) {
      // A gap is damage to the repository (exit 1, naming the segment); a target newer than the archive is bad input.
      if (archive.missing.length) {
        throw failed(
          `the WAL archive has a gap: segment ${archive.missing[0]} is missing, so nothing after ${newestTime} (segment ${newest!.name}) is recoverable from backup ${chosen.id}`,
          `restore the segment into the repository's wal/ if a copy exists (the object store, another host), or choose a target before ${newestTime}`,
        );
      }
      throw badInput(
        `the target ${target.time.toISOString()} is past the newest archived WAL reachable from backup ${chosen.id}`,
        `the newest recoverable point is about ${newestTime} (segment ${newest!.name}); a later target needs WAL that has not been archived yet`,
      );
    }
  }
  if (target.kind === 'lsn' && newest) {
    const end = (newest.segno + 1n) * BigInt(seg);
    if (parseLsn(target.lsn) > end)
      throw badInput(
        `the target LSN ${target.lsn} is past the newest archived WAL (${newest.name})`,
        'choose an earlier LSN',
      );
  }
  return chosen;
}

/** When the newest archived WAL segment was archived, if any. */
function newestArchivedAt(catalog: Catalog): number | undefined {
  let newest: number | undefined;
  for (const f of catalog.walFiles) {
    if (!SEGMENT_RE.test(f)) continue;
    const at = catalog.walTime(f);
    if (at && (newest === undefined || Date.parse(at) > newest)) newest = Date.parse(at);
  }
  return newest;
}

/** A time target as PostgreSQL can reach it, read from the archived WAL around it (see commits.ts). */
async function resolveTarget(
  catalog: Catalog,
  backup: BackupRecord,
  target: RecoveryTarget,
  pg: PgBinaries,
): Promise<(ResolvedTime & { around: CommitsAround }) | undefined> {
  if (target.kind !== 'time') return undefined;
  const seg = backup.server.walSegmentBytes;
  const { segments } = checkArchive(
    catalog.walFiles,
    catalog.histories,
    parseSegment(backup.physical!.startSegment, seg)!,
    seg,
  );
  const around = await commitsAround(
    pg.bin('pg_waldump'),
    {
      segments,
      archivedAt: (n) => catalog.walTime(n),
      path: (n) => catalog.walPath(n),
      slackMs: 1000,
    },
    target.time,
    seg,
  );
  return { ...resolveTime(target.time, around, backup.physical!.stopLsn), around };
}

/** The WAL position recovery will stop at, as far as it is known before it starts (for progress). */
function replayEnd(catalog: Catalog, backup: BackupRecord, target: RecoveryTarget): bigint {
  const seg = backup.server.walSegmentBytes;
  if (target.kind === 'immediate') return parseLsn(backup.physical!.stopLsn);
  if (target.kind === 'lsn') return parseLsn(target.lsn);
  const point = target.kind === 'name' ? catalog.restorePoints.find((p) => p.name === target.name) : undefined;
  if (point) return parseLsn(point.lsn);
  const { newest } = checkArchive(
    catalog.walFiles,
    catalog.histories,
    parseSegment(backup.physical!.startSegment, seg)!,
    seg,
  );
  return newest ? (newest.segno + 1n) * BigInt(seg) : parseLsn(backup.physical!.stopLsn);
}

/** Files of the backup whose content no longer matches the SHA-256 recorded when it was taken. */
async function damagedFiles(dir: string, r: BackupRecord): Promise<string[]> {
  const out: string[] = [];
  for (const f of r.files.filter((x) => /\.tar/.test(x.name))) {
    const path = join(dir, f.name);
    if (!existsSync(path) || (await sha256File(path)) !== f.sha256) out.push(f.name);
  }
  return out;
}

/** A path with the symlinks of its nearest existing ancestor resolved (the rest does not exist yet). */
function realTarget(p: string): string {
  const rest: string[] = [];
  let existing = p;
  while (!existsSync(existing)) {
    rest.unshift(basename(existing));
    existing = dirname(existing);
  }
  return join(realpathSync(existing), ...rest);
}

const within = (a: string, b: string) => a === b || a.startsWith(b.endsWith(sep) ? b : b + sep);

/** The live cluster's tablespaces: where the links in pg_tblspc point. */
export function tablespaceDirs(dataDir: string): string[] {
  const dir = join(dataDir, 'pg_tblspc');
  try {
    return readdirSync(dir).map((l) => realpathSync(join(dir, l)));
  } catch {
    return [];
  }
}

/**
 * Refuses (exit 3) a target that is not empty, or that is inside or contains
 * a live directory (the data directory, a tablespace, the repository and its
 * WAL archive, the rest of the state directory), symlinks resolved.
 */
export function checkTargetDir(to: string, liveDataDir?: string, protectedDirs: Record<string, string> = {}): void {
  const abs = resolve(to);
  const real = realTarget(abs);
  const live: Record<string, string> = {
    ...(liveDataDir ? { "the live cluster's data directory": liveDataDir } : {}),
    ...protectedDirs,
  };
  for (const tbs of liveDataDir ? tablespaceDirs(liveDataDir) : [])
    live[`a tablespace of the live cluster (${tbs})`] = tbs;
  for (const [what, dir] of Object.entries(live)) {
    if (!existsSync(dir)) continue;
    const d = realpathSync(dir);
    if (real === d)
      throw refused(
        `${abs} is ${what}; a restore never goes there`,
        'restore into a new directory, then swap deliberately',
      );
    if (within(real, d))
      throw refused(
        `${abs} is inside ${what} (${d}); a restore never writes there`,
        'give --to a new directory outside the live cluster and the repository',
      );
    if (within(d, real))
      throw refused(
        `${abs} contains ${what} (${d}); a restore never writes around it`,
        'give --to a new directory outside the live cluster and the repository',
      );
  }
  if (existsSync(abs) && readdirSync(abs).length > 0) {
    throw refused(
      `${abs} is not empty; a restore never overwrites a directory`,
      'give a new or empty directory with --to',
    );
  }
  if (existsSync(join(abs, 'postmaster.pid'))) throw refused(`${abs} holds a running cluster`);
}

async function binariesFor(major: number): Promise<PgBinaries> {
  const pg = await findPgBinaries({ minMajor: major, major });
  if (!pg) {
    throw badInput(
      `the backup is PostgreSQL ${major}; this host lacks its binaries (postgres, pg_ctl, initdb)`,
      `install PostgreSQL ${major} (Debian: apt-get install postgresql-${major}) or set EDUPULSE_PG_BINDIR`,
    );
  }
  return pg;
}

/** Seconds between two log lines' timestamps ("2026-11-24 23:04:28.997 UTC ..."), when both are there. */
function logTimes(log: string): { redoDone?: number; ready?: number } {
  const at = (re: RegExp) => {
    const lines = log.split('\n').filter((l) => re.test(l));
    const m = /^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) (\w+)/.exec(lines[lines.length - 1] ?? '');
    return m ? Date.parse(`${m[1]!.replace(' ', 'T')}Z`) : undefined;
  };
  return {
    redoDone: at(/redo done at|recovery stopping|pausing at the end of recovery/),
    ready: at(/database system is ready to accept connections/),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function restore(ctx: BackupContext, opts: RestoreOptions): Promise<RestoreResult> {
  const t0 = performance.now();
  const to = resolve(opts.to);
  checkTargetDir(to, opts.liveDataDir, opts.protectedDirs);
  if (opts.port !== undefined && !(await portFree(opts.port)))
    throw badInput(`port ${opts.port} is already in use`, 'choose a free port, or leave --port out');
  await checkReachableBy(
    ctx.as,
    dirname(to),
    "restore into a directory the cluster's OS user can reach, for example under the state directory",
  );
  const catalog = opts.catalog ?? localCatalog(ctx);
  // The backup choice is bad input or not before the live server is asked for anything.
  pickBackup(catalog, opts.target, opts.backupId);
  if (opts.target.kind === 'time' && opts.archiveNow && opts.target.time.getTime() > (newestArchivedAt(catalog) ?? 0)) {
    // The WAL up to "just now" is still in the live server's current segment: have it archived (bounded) rather than refuse.
    await opts.archiveNow().catch((err: unknown) =>
      ctx.logger.log({
        event: 'warn',
        message: `could not archive the live server's current WAL: ${describeError(err)}`,
      }),
    );
  }
  const backup = chooseBackup(catalog, opts.target, opts.backupId);
  const pg = await binariesFor(backup.server.major);
  const resolved = await resolveTarget(catalog, backup, opts.target, pg);
  const recoveryTarget: RecoveryTarget = resolved?.target ?? opts.target;
  const replayFrom = parseLsn(backup.physical!.startLsn);
  const replayTo = resolved?.around.after
    ? parseLsn(resolved.around.after.lsn)
    : replayEnd(catalog, backup, recoveryTarget);
  // What extraction unpacks: the data files the manifest lists and the WAL the backup streamed.
  const extractTotal =
    backup.sizes.rawBytes + Number(parseLsn(backup.physical!.stopLsn) - replayFrom) + backup.server.walSegmentBytes;
  const port = opts.port ?? (await freePort());
  const chooseSeconds = (performance.now() - t0) / 1000;
  const created = !existsSync(to);
  const spec: ClusterSpec = { pg, dataDir: to, logFile: join(to, 'restore.log'), port, as: ctx.as, logger: ctx.logger };
  try {
    const e0 = performance.now();
    try {
      const dir = await catalog.baseDir(backup);
      // The files are checked against their recorded SHA-256 while tar extracts them: a damaged backup
      // fails here, named, instead of starting a cluster with corrupt pages.
      const [extractError, damaged] = await Promise.all([
        extractBaseBackup(dir, to, {
          as: ctx.as,
          onBytes:
            opts.onProgress &&
            ((done) => opts.onProgress!({ phase: 'extract', done, total: extractTotal, unit: 'bytes' })),
        }).then(
          () => undefined,
          (err: unknown) => err,
        ),
        damagedFiles(dir, backup),
      ]);
      if (damaged.length) {
        throw failed(
          `backup ${backup.id} is damaged: ${damaged.join(', ')} not matching the SHA-256 recorded in backup.json`,
          'restore from another backup (--backup), and run backup:verify --all',
        );
      }
      if (extractError) throw extractError;
    } finally {
      catalog.cleanup();
    }
    const extractSeconds = (performance.now() - e0) / 1000;
    const params: Record<string, string> = {
      port: String(port),
      listen_addresses: '127.0.0.1',
      // TCP only: the restored cluster shares no socket directory with anything.
      unix_socket_directories: '',
      // Never archive from a restored cluster: its new timeline must not enter the live archive.
      archive_mode: 'off',
      restore_command: catalog.restoreCommand,
      ...targetParameters(recoveryTarget),
      recovery_target_action: opts.pause ? 'pause' : 'promote',
      recovery_target_timeline: 'latest',
      hot_standby: 'on',
      shared_preload_libraries: 'pg_stat_statements',
    };
    // The backup carries the live cluster's edupulse.conf (included by postgresql.conf); this replaces it.
    for (const [name, content] of [
      ['edupulse.conf', renderConf(params)],
      ['recovery.signal', ''],
    ] as const) {
      writeFileSync(join(to, name), content, { mode: 0o600 });
      if (ctx.as) chownSync(join(to, name), ctx.as.uid, ctx.as.gid);
    }
    const result: RestoreResult = {
      backup: {
        id: backup.id,
        endedAt: backup.physical!.endedAt,
        stopLsn: backup.physical!.stopLsn,
        major: backup.server.major,
      },
      target: describeTarget(opts.target),
      dataDir: to,
      port,
      promoted: false,
      paused: false,
      timings: { chooseSeconds, extractSeconds },
      spec,
      ...(resolved?.quiet ? { recoveredTo: describeTarget(recoveryTarget), quiet: resolved.quiet } : {}),
      ...(resolved
        ? {
            walEvidence: {
              ...(resolved.around.atOrBefore
                ? {
                    atOrBefore: { ...resolved.around.atOrBefore, micros: resolved.around.atOrBefore.micros.toString() },
                  }
                : {}),
              ...(resolved.around.after
                ? { after: { ...resolved.around.after, micros: resolved.around.after.micros.toString() } }
                : {}),
              through: resolved.around.through,
            },
          }
        : {}),
    };
    if (!opts.start) return result;
    const s0 = Date.now();
    await startCluster(spec, { timeoutSeconds: opts.timeoutSeconds ?? 3600 });
    const admin: PgConfig = {
      host: '127.0.0.1',
      port,
      user: opts.superuser.user,
      password: opts.superuser.password,
      database: 'postgres',
      application_name: 'edupulse-db restore',
    };
    const deadline = Date.now() + (opts.timeoutSeconds ?? 3600) * 1000;
    let refusals = 0,
      lastRefusal = '';
    for (;;) {
      const pid = postmasterPid(to);
      if (!pid || !processAlive(pid)) {
        throw failed(
          `the restored server stopped during recovery:\n${tail(readFileSync(spec.logFile, 'utf8'), 12)}`,
          `see ${spec.logFile}`,
        );
      }
      const state = await withClient(
        admin,
        async (c) =>
          (
            await c.query(
              `SELECT pg_is_in_recovery() AS recovering, CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END AS pause,
          pg_last_wal_replay_lsn()::text AS replayed`,
            )
          ).rows[0],
      ).catch((err: unknown) => {
        // "Starting up" (57P03) or not listening yet is waited out; anything else, persistently, is a failure.
        const transient =
          (err as { code?: string }).code === '57P03' ||
          /ECONNREFUSED|starting up|not yet accepting/i.test(String((err as Error).message));
        refusals = transient ? 0 : refusals + 1;
        lastRefusal = describeError(err);
        return undefined;
      });
      if (refusals >= 30)
        throw failed(
          `the restored server is running but refuses connections: ${lastRefusal}\n${tail(readFileSync(spec.logFile, 'utf8'), 6)}`,
          `see ${spec.logFile}`,
        );
      if (state?.replayed && opts.onProgress) {
        const total = Number(replayTo - replayFrom);
        opts.onProgress({
          phase: 'replay',
          done: Math.min(total, Number(parseLsn(state.replayed) - replayFrom)),
          total,
          unit: 'WAL bytes',
        });
      }
      if (state && !state.recovering) {
        result.promoted = true;
        break;
      }
      if (state && opts.pause && state.pause === 'paused') {
        result.paused = true;
        break;
      }
      if (Date.now() > deadline)
        throw failed(`recovery did not finish within ${opts.timeoutSeconds ?? 3600}s`, `see ${spec.logFile}`);
      await sleep(100);
    }
    const times = logTimes(readFileSync(spec.logFile, 'utf8'));
    if (times.redoDone) result.timings.replaySeconds = Math.max(0, (times.redoDone - s0) / 1000);
    if (times.redoDone && times.ready && result.promoted)
      result.timings.promoteSeconds = Math.max(0, (times.ready - times.redoDone) / 1000);
    await withClient(admin, async (c) => {
      const { rows } = await c.query(
        `SELECT pg_wal_lsn_diff(coalesce(pg_last_wal_replay_lsn(), pg_current_wal_lsn()), $1)::bigint AS bytes,
        pg_last_xact_replay_timestamp() AS last, (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::bigint::text AS us`,
        [backup.physical!.startLsn],
      );
      result.replayedWalBytes = Number(rows[0].bytes);
      result.lastReplayedCommit = rows[0].last ? (rows[0].last as Date).toISOString() : null;
      result.lastReplayedMicros = rows[0].us ?? null;
    });
    return result;
  } catch (err) {
    // Nothing half-made stays behind: stop what was started, remove what was made. The server's log is
    // kept (in the state's logs) and the error points there, not into the directory just removed.
    if (await clusterRunning(spec)) await stopCluster(spec, 'immediate').catch(() => {});
    const kept = opts.logDir && existsSync(spec.logFile) ? keepLog(spec.logFile, opts.logDir) : undefined;
    if (created) rmSync(to, { recursive: true, force: true });
    else for (const f of existsSync(to) ? readdirSync(to) : []) rmSync(join(to, f), { recursive: true, force: true });
    if (
      kept &&
      err instanceof ToolkitError &&
      (err.message.includes(spec.logFile) || err.hint?.includes(spec.logFile))
    ) {
      throw new ToolkitError(
        err.kind,
        err.message.replaceAll(spec.logFile, kept),
        err.hint?.replaceAll(spec.logFile, kept),
        { cause: err.cause },
      );
    }
    throw err;
  }
}

/** Copies a failed restore's server log to the logs directory (owner-only), named by time. */
function keepLog(log: string, logDir: string): string {
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  const kept = join(logDir, `restore-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
  copyFileSync(log, kept);
  chmodSync(kept, 0o600);
  return kept;
}
