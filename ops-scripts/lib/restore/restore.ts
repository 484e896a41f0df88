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
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { acquireLockFile } from '../lock-file.ts';
import { findPgBinaries, type PgBinaries } from '../binaries.ts';
import type { BackupContext } from '../backup/context.ts';
import { extractBaseBackup } from '../backup/extract.ts';
import { sha256File, type BackupRecord } from '../backup/repository.ts';
import { parseLsn, SEGMENT_RE } from '../backup/wal.ts';
import { clusterRunning, renderConf, stopCluster, type ClusterSpec } from '../cluster.ts';
import { badInput, describeError, failed, refused, ToolkitError } from '../errors.ts';
import { bytes } from '../format.ts';
import { checkReachableBy } from '../stack-context.ts';
import { freePort, portFree } from '../ports.ts';
import type { PhaseProgress } from '../progress.ts';
import { localCatalog, type Catalog } from './catalog.ts';
import type { StoreLease } from '../backup/store-readers.ts';
import type { PrefetchStats } from './prefetch.ts';
import { type ResolvedTime } from './commits.ts';
import { describeTarget, targetParameters, type RecoveryTarget } from './target.ts';
import {
  archivedEnd,
  chooseBackup,
  pickBackup,
  newestArchivedAt,
  replayEnd,
  resolveTarget,
  targetLsn,
  walToKeep,
} from './select.ts';
import { checkTargetDir, realTarget } from './target-dir.ts';
import { awaitRecovery } from './recover.ts';
import { requireIdentity } from '../backup/crypt.ts';
import { ensurePrivateDir, fsSpace } from '../files.ts';
import { onInterrupt } from '../interrupt.ts';
import { registerReader } from '../backup/readers.ts';
import { run } from '../run.ts';
import { chainOf, combineArgs } from '../backup/incremental.ts';

/** WAL files a restore not started copies at once (decompressing, decrypting, downloading each). */
const WAL_COPY_PARALLEL = 4;

export interface RestoreOptions {
  /** Who reads the repository, as retention names it while deferring (default 'restore'). */
  reader?: string;
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
   * now"), or the archive holds no transaction end after it (a quiet moment, or
   * an archiver behind), or an LSN or restore point target is past the
   * archive's end: switch the live server's segment and wait for it to be archived.
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
  /**
   * Not started: the archived WAL files replay to the target needs, copied into its pg_wal (where PostgreSQL looks
   * when the restore_command no longer has a file), so starting it later does not depend on the repository keeping them.
   */
  walCopied?: { files: number; bytes: number };
  /** From a store: the retention at work there that this restore waited for before it read the store (its catalog again). */
  storeWait?: { for: string; seconds: number };
  /** From a store: WAL segments fetched ahead of replay, how many the server took from the spool, failures. */
  walPrefetch?: PrefetchStats;
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

/** Files of the backup whose content no longer matches the SHA-256 recorded when it was taken. */
async function damagedFiles(dir: string, r: BackupRecord): Promise<string[]> {
  const out: string[] = [];
  for (const f of r.files.filter((x) => /\.tar/.test(x.name))) {
    const path = join(dir, f.name);
    if (!existsSync(path) || (await sha256File(path)) !== f.sha256) out.push(f.name);
  }
  return out;
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

export async function restore(ctx: BackupContext, opts: RestoreOptions): Promise<RestoreResult> {
  // Retention leaves the local repository alone while this reads it (the backup it picks, the WAL replay needs).
  const reading = registerReader(ctx.repo.root, opts.reader ?? 'restore');
  try {
    if (opts.catalog) return await restoreFrom(ctx, opts, opts.catalog);
    // The local repository; compressed segments pg_waldump reads are unpacked into a temp directory, removed after.
    const own = localCatalog(ctx, join(tmpdir(), `edupulse-restore-wal-${process.pid}-${Date.now()}`));
    const forget = onInterrupt(() => own.cleanup());
    try {
      return await restoreFrom(ctx, opts, own);
    } finally {
      forget();
      own.cleanup();
    }
  } finally {
    reading();
  }
}

/**
 * The lock of a restore into `to` on this host, by its path with symlinks resolved: two restores into one new (or
 * empty) directory both found it empty and then wrote into each other's files. The second is refused (exit 3).
 */
export const restoreLockPath = (to: string) =>
  join(
    tmpdir(),
    `edupulse-restore-${createHash('sha256')
      .update(realTarget(resolve(to)))
      .digest('hex')
      .slice(0, 16)}.lock`,
  );

async function restoreFrom(ctx: BackupContext, opts: RestoreOptions, catalog: Catalog): Promise<RestoreResult> {
  checkTargetDir(resolve(opts.to), opts.liveDataDir, opts.protectedDirs);
  const unlock = acquireLockFile(restoreLockPath(opts.to), `a restore into ${resolve(opts.to)}`);
  const forget = onInterrupt(unlock);
  const releases: Array<() => Promise<void>> = [];
  try {
    return await restoreLocked(ctx, opts, catalog, releases);
  } finally {
    for (const release of releases) await release();
    forget();
    unlock();
  }
}

/**
 * The backup the target and --backup-id pick, with what restoring it needs: the identity when it (or the WAL) is
 * encrypted, its major version's binaries, room for it. Bad input exits 2, no room 3, before anything is touched.
 */
async function checkChoice(ctx: BackupContext, opts: RestoreOptions, catalog: Catalog, to: string) {
  const picked = pickBackup(catalog, opts.target, opts.backupId);
  // Encrypted at rest: without a usable identity the restore is refused (exit 2) before anything is touched.
  const identityFile =
    picked.encryption || catalog.walEncrypted
      ? requireIdentity(
          ctx.settings.backup.encryption.identityFile,
          picked.encryption ? `backup ${picked.id}` : 'the archived WAL',
          ctx.as,
        )
      : undefined;
  // Without the backup's binaries the restore is refused (exit 2) before the live server is asked to archive.
  const pg = await binariesFor(picked.server.major);
  // Likewise without room for the backup picked (exit 3): the WAL replay needs is counted once it is known, below.
  checkRoom(to, roomFor(catalog, picked), picked);
  return { picked, identityFile, pg };
}

async function restoreLocked(
  ctx: BackupContext,
  opts: RestoreOptions,
  catalog: Catalog,
  releases: Array<() => Promise<void>>,
): Promise<RestoreResult> {
  const t0 = performance.now();
  const to = resolve(opts.to);
  // Again under the lock: a restore that held it a moment ago may have filled the directory.
  checkTargetDir(to, opts.liveDataDir, opts.protectedDirs);
  if (opts.port !== undefined && !(await portFree(opts.port)))
    throw badInput(`port ${opts.port} is already in use`, 'choose a free port, or leave --port out');
  await checkReachableBy(
    ctx.as,
    dirname(to),
    "restore into a directory the cluster's OS user can reach, for example under the state directory",
  );
  // The backup choice is bad input or not before the live server is asked for anything.
  let { picked, identityFile, pg } = await checkChoice(ctx, opts, catalog, to);
  // The input is good: from a store, lease it while reading (the backup, the WAL replay reads), so retention on any
  // host waits; a local repository has its reader's marker already (restore()). The lease returns once no retention
  // is at work there; what one did since the catalog was read (before the lease) is read again, and checked again.
  let storeWait: StoreLease['waited'];
  if (catalog.lease) {
    const lease = await catalog.lease(opts.reader ?? 'restore');
    releases.push(lease.release);
    storeWait = lease.waited;
    await catalog.refresh?.();
    ({ picked, identityFile, pg } = await checkChoice(ctx, opts, catalog, to));
  }
  /** Have the live server archive its current WAL (bounded), once; false when it cannot be asked. */
  let caughtUp: boolean | undefined;
  /** When it was asked, once it has: everything it wrote before then is in the archive. */
  let completeAt: number | undefined;
  const catchUp = async (): Promise<boolean> => {
    if (caughtUp !== undefined) return caughtUp;
    if (!opts.archiveNow) return (caughtUp = false);
    const asked = Date.now();
    try {
      await opts.archiveNow();
      completeAt = asked;
      return (caughtUp = true);
    } catch (err) {
      ctx.logger.log({
        event: 'warn',
        message: `could not archive the live server's current WAL: ${describeError(err)}`,
      });
      return (caughtUp = false);
    }
  };
  // The WAL up to "just now" is still in the live server's current segment: have it archived rather than refuse.
  if (opts.target.kind === 'time' && opts.archiveNow && opts.target.time.getTime() > (newestArchivedAt(catalog) ?? 0))
    await catchUp();
  // Likewise an LSN, or a restore point, the archive does not reach yet (pg_current_wal_lsn() or a mark a moment ago).
  const lsn = targetLsn(opts.target, catalog);
  if (lsn && opts.archiveNow && parseLsn(lsn) > archivedEnd(catalog, picked)) await catchUp();
  const backup = chooseBackup(catalog, opts.target, opts.backupId, new Date(), completeAt);
  let resolved = await resolveTarget(catalog, backup, opts.target, pg);
  // Nothing after the target in the archive: a quiet moment, or WAL not archived yet. A segment is archived after it
  // closes, so the newest one can be archived after the target and still end before it while the archiver lags;
  // stopping at the archive's last commit would then lose what was committed up to the target. Archive first, read again.
  if (resolved?.quiet && opts.archiveNow && caughtUp === undefined && (await catchUp()))
    resolved = await resolveTarget(catalog, backup, opts.target, pg);
  if (resolved?.quiet && opts.archiveNow && !caughtUp)
    resolved.quiet.note +=
      '; the live server could not be asked to archive its current WAL, so what it had committed but not archived is not in this restore';
  const recoveryTarget: RecoveryTarget = resolved?.target ?? opts.target;
  const replayFrom = parseLsn(backup.physical!.startLsn);
  const replayTo = resolved?.around.after
    ? parseLsn(resolved.around.after.lsn)
    : replayEnd(catalog, backup, recoveryTarget);
  // What extraction unpacks, and room for it, checked again (the backup chosen for the target may be another) before
  // anything is extracted: a restore that fills its disk fails late, after the longest part of the work.
  const extractTotal = extractBytes(backup);
  // Not started, the cluster replays later, after this job and its guard on retention have ended: it gets the WAL
  // it replays in its own pg_wal, so a backup:prune in between cannot take it (README, restore).
  const keep = opts.start ? [] : walToKeep(catalog, backup, replayTo);
  const keepBytes = keep.filter((f) => SEGMENT_RE.test(f)).length * backup.server.walSegmentBytes;
  checkRoom(to, roomFor(catalog, backup) + keepBytes, backup);
  const port = opts.port ?? (await freePort());
  const chooseSeconds = (performance.now() - t0) / 1000;
  const created = !existsSync(to);
  // From a store, the WAL replay needs is fetched while the base backup is extracted and ahead of replay.
  const prefetcher = opts.start ? catalog.prefetch?.(backup) : undefined;
  let prefetched: PrefetchStats | undefined;
  const forgetSpool = prefetcher ? onInterrupt(async () => void (await prefetcher.stop())) : () => {};
  const result = await extractAndRecover().finally(async () => {
    forgetSpool();
    prefetched = await prefetcher?.stop();
  });
  if (prefetched) {
    result.walPrefetch = prefetched;
    if (prefetched.failed)
      ctx.logger.log({
        event: 'warn',
        message: `${prefetched.failed} WAL prefetches failed (the restore_command fetched them)`,
      });
  }
  return result;

  async function extractAndRecover(): Promise<RestoreResult> {
    const spec: ClusterSpec = {
      pg,
      dataDir: to,
      logFile: join(to, 'restore.log'),
      port,
      as: ctx.as,
      logger: ctx.logger,
    };
    // Nothing half-made stays behind, whether the restore fails or is interrupted: stop what was started, remove
    // what was made (once). The server's log is kept in the state's logs; the path is returned.
    let undone: Promise<string | undefined> | undefined;
    const undo = () =>
      (undone ??= (async () => {
        if (await clusterRunning(spec)) await stopCluster(spec, 'immediate').catch(() => {});
        const kept = opts.logDir && existsSync(spec.logFile) ? keepLog(spec.logFile, opts.logDir) : undefined;
        if (created) rmSync(to, { recursive: true, force: true });
        else
          for (const f of existsSync(to) ? readdirSync(to) : []) rmSync(join(to, f), { recursive: true, force: true });
        rmSync(`${to}.chain`, { recursive: true, force: true });
        return kept;
      })());
    const forget = onInterrupt(async () => {
      const kept = await undo();
      ctx.logger.log({
        event: 'warn',
        message: `${created ? 'removed' : 'emptied'} ${to}${kept ? `; the server's log is kept in ${kept}` : ''}`,
      });
    });
    try {
      const e0 = performance.now();
      try {
        const chain = chainOf(catalog.backups, backup);
        // An incremental (PostgreSQL 17+): each backup of its chain extracted beside the target, checked
        // like any other, then pg_combinebackup writes the full data directory the recovery starts from.
        const combineRoot = `${to}.chain`;
        const extractOne = async (member: BackupRecord, into: string) => {
          const dir = await catalog.baseDir(member);
          // The files are checked against their recorded SHA-256 while tar extracts them: a damaged backup
          // fails here, named, instead of starting a cluster with corrupt pages.
          const [extractError, damaged] = await Promise.all([
            extractBaseBackup(dir, into, {
              as: ctx.as,
              identityFile,
              withManifest: chain.length > 1,
              onBytes:
                chain.length === 1 && opts.onProgress
                  ? (done) => opts.onProgress!({ phase: 'extract', done, total: extractTotal, unit: 'bytes' })
                  : undefined,
            }).then(
              () => undefined,
              (err: unknown) => err,
            ),
            damagedFiles(dir, member),
          ]);
          if (damaged.length) {
            throw failed(
              `backup ${member.id} is damaged: ${damaged.join(', ')} not matching the SHA-256 recorded in backup.json`,
              'restore from another backup (--backup), and run backup:verify --all',
            );
          }
          if (extractError) throw extractError;
        };
        if (chain.length === 1) await extractOne(backup, to);
        else {
          try {
            ensurePrivateDir(combineRoot, ctx.as);
            for (const member of chain) await extractOne(member, join(combineRoot, member.id));
            await run(
              pg.bin('pg_combinebackup'),
              combineArgs(
                chain.map((m) => join(combineRoot, m.id)),
                to,
              ),
              { as: ctx.as, dieWithParent: true },
            );
          } finally {
            rmSync(combineRoot, { recursive: true, force: true });
          }
        }
      } finally {
        catalog.cleanup();
      }
      const walCopied = keep.length
        ? await copyWal(
            catalog,
            keep,
            join(to, 'pg_wal'),
            opts.onProgress &&
              ((done) => opts.onProgress!({ phase: 'copy WAL', done, total: keepBytes || done, unit: 'bytes' })),
          )
        : undefined;
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
      // Its postgresql.auto.conf (ALTER SYSTEM, which wins over edupulse.conf) may name synchronous standbys: a
      // restored server has none, and every write would wait for one forever. Those lines go.
      const auto = join(to, 'postgresql.auto.conf');
      if (existsSync(auto)) {
        const kept = readFileSync(auto, 'utf8')
          .split('\n')
          .filter((l) => !/^\s*(synchronous_standby_names|primary_conninfo|primary_slot_name)\s*=/.test(l))
          .join('\n');
        writeFileSync(auto, kept, { mode: 0o600 });
        if (ctx.as) chownSync(auto, ctx.as.uid, ctx.as.gid);
      }
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
        ...(storeWait ? { storeWait } : {}),
        ...(walCopied ? { walCopied } : {}),
        spec,
        ...(resolved?.quiet ? { recoveredTo: describeTarget(recoveryTarget), quiet: resolved.quiet } : {}),
        ...(resolved
          ? {
              walEvidence: {
                ...(resolved.around.atOrBefore
                  ? {
                      atOrBefore: {
                        ...resolved.around.atOrBefore,
                        micros: resolved.around.atOrBefore.micros.toString(),
                      },
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
      const recovered = await awaitRecovery(spec, opts.superuser, {
        pause: opts.pause,
        timeoutSeconds: opts.timeoutSeconds,
        replayFrom,
        replayTo,
        startLsn: backup.physical!.startLsn,
        onProgress: opts.onProgress,
      });
      const { replaySeconds, promoteSeconds, ...rest } = recovered;
      Object.assign(result, rest);
      if (replaySeconds !== undefined) result.timings.replaySeconds = replaySeconds;
      if (promoteSeconds !== undefined) result.timings.promoteSeconds = promoteSeconds;
      return result;
    } catch (err) {
      // The error points at the kept log, not into the directory just removed.
      const kept = await undo();
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
    } finally {
      forget();
    }
  }
}

/** Copies archived WAL files `names` into `pgWal` (over the backup's partial copy of a segment), a few at a time. */
async function copyWal(
  catalog: Catalog,
  names: string[],
  pgWal: string,
  onBytes?: (done: number) => void,
): Promise<{ files: number; bytes: number }> {
  let next = 0;
  let bytes = 0;
  const worker = async () => {
    while (next < names.length) {
      const name = names[next++]!;
      await catalog.fetchWal(name, join(pgWal, name));
      bytes += statSync(join(pgWal, name)).size;
      onBytes?.(bytes);
    }
  };
  await Promise.all(Array.from({ length: Math.min(WAL_COPY_PARALLEL, names.length) }, worker));
  return { files: names.length, bytes };
}

/** What extraction unpacks for `backup`: its data files, the WAL it streamed and a segment. */
function extractBytes(backup: BackupRecord): number {
  const { startLsn, stopLsn } = backup.physical!;
  return backup.sizes.rawBytes + Number(parseLsn(stopLsn) - parseLsn(startLsn)) + backup.server.walSegmentBytes;
}

/** The room a restore of `backup` needs: what it unpacks, and an incremental's chain, extracted beside the target first. */
function roomFor(catalog: Catalog, backup: BackupRecord): number {
  const members = chainOf(catalog.backups, backup);
  return extractBytes(backup) + (members.length > 1 ? members.reduce((sum, m) => sum + m.sizes.rawBytes, 0) : 0);
}

/** Refused (exit 3) when the target's filesystem lacks the room the restore needs, with a margin (5%, 64 MB). */
function checkRoom(to: string, unpacked: number, backup: BackupRecord): void {
  const needed = Math.ceil(unpacked * 1.05) + 64 * 1048576;
  const { free } = fsSpace(to);
  if (free < needed)
    throw refused(
      `${to} is on a filesystem with ${bytes(free)} free; restoring backup ${backup.id} needs about ${bytes(needed)} ` +
        `(${bytes(backup.sizes.rawBytes)} of data files, the WAL it holds, a margin); nothing was extracted`,
      'free space there, or restore onto another filesystem with --to',
    );
}

/** Copies a failed restore's server log to the logs directory (owner-only), named by time. */
function keepLog(log: string, logDir: string): string {
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  const kept = join(logDir, `restore-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
  copyFileSync(log, kept);
  chmodSync(kept, 0o600);
  return kept;
}
