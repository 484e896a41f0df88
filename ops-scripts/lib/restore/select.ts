// Selecting what a restore restores from (pgbackrest's restore: select):
// the backup for a target, whether the archive reaches the target, and where
// recovery will stop (for a time target, read from the archived WAL).
import { type PgBinaries } from '../binaries.ts';
import { type BackupRecord } from '../backup/repository.ts';
import { checkArchive, HISTORY_RE, parseLsn, parseSegment, SEGMENT_RE } from '../backup/wal.ts';
import { badInput, failed } from '../errors.ts';
import { type Catalog } from './catalog.ts';
import { commitsAround, resolveTime, type CommitsAround, type ResolvedTime } from './commits.ts';
import { describeTarget, type RecoveryTarget } from './target.ts';

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

/** The archive as recovery from `backup` reads it: the segments from its start, on the timelines it follows. */
function archiveFrom(catalog: Catalog, backup: BackupRecord) {
  const seg = backup.server.walSegmentBytes;
  return checkArchive(catalog.walFiles, catalog.histories, parseSegment(backup.physical!.startSegment, seg)!, seg);
}

/**
 * The backup to restore from, and the checks that the target is reachable from it. `completeAt` (ms): when the live
 * server was last asked to archive its WAL and the archive then had it all, so a time target up to then is reachable
 * though the newest segment was archived earlier (a server with nothing written since its last switch does not switch).
 */
export function chooseBackup(
  catalog: Catalog,
  target: RecoveryTarget,
  backupId?: string,
  now = new Date(),
  completeAt?: number,
): BackupRecord {
  const chosen = pickBackup(catalog, target, backupId);
  // The upper end: what the archive holds.
  const seg = chosen.server.walSegmentBytes;
  const archive = archiveFrom(catalog, chosen);
  const newest = archive.newest;
  const newestTime = newest ? catalog.walTime(newest.name) : undefined;
  if (target.kind === 'time') {
    if (target.time > now)
      throw badInput(
        `the target ${target.time.toISOString()} is in the future`,
        `the newest recoverable point is about ${newestTime ?? chosen.physical!.endedAt}`,
      );
    // Object stores keep LastModified to the second: a second of slack for them.
    const reachable = Math.max(
      newestTime ? Date.parse(newestTime) + (catalog.source === 'remote' ? 1000 : 0) : -Infinity,
      completeAt ?? -Infinity,
    );
    if (newestTime && target.time.getTime() > reachable) {
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
export function newestArchivedAt(catalog: Catalog): number | undefined {
  let newest: number | undefined;
  for (const f of catalog.walFiles) {
    if (!SEGMENT_RE.test(f)) continue;
    const at = catalog.walTime(f);
    if (at && (newest === undefined || Date.parse(at) > newest)) newest = Date.parse(at);
  }
  return newest;
}

/** A time target as PostgreSQL can reach it, read from the archived WAL around it (see commits.ts). */
export async function resolveTarget(
  catalog: Catalog,
  backup: BackupRecord,
  target: RecoveryTarget,
  pg: PgBinaries,
): Promise<(ResolvedTime & { around: CommitsAround }) | undefined> {
  if (target.kind !== 'time') return undefined;
  const { segments } = archiveFrom(catalog, backup);
  const around = await commitsAround(
    pg.bin('pg_waldump'),
    {
      segments,
      archivedAt: (n) => catalog.walTime(n),
      path: (n) => catalog.walPath(n),
      slackMs: 1000,
    },
    target,
    backup.server.walSegmentBytes,
  );
  return { ...resolveTime(target, around, backup.physical!.stopLsn), around };
}

/** The WAL position recovery will stop at, as far as it is known before it starts (for progress). */
export function replayEnd(catalog: Catalog, backup: BackupRecord, target: RecoveryTarget): bigint {
  if (target.kind === 'immediate') return parseLsn(backup.physical!.stopLsn);
  const lsn = targetLsn(target, catalog);
  return lsn ? parseLsn(lsn) : archivedEnd(catalog, backup);
}

/** The WAL position an LSN or a restore point target names, if known. */
export function targetLsn(t: RecoveryTarget, catalog: Catalog): string | undefined {
  if (t.kind === 'lsn') return t.lsn;
  if (t.kind === 'name') return catalog.restorePoints.find((p) => p.name === t.name)?.lsn;
  return undefined;
}

/** Where the archived WAL reachable from `backup` ends: the end of its newest segment (the backup's end without one). */
export function archivedEnd(catalog: Catalog, backup: BackupRecord): bigint {
  const seg = backup.server.walSegmentBytes;
  const { newest } = archiveFrom(catalog, backup);
  return newest ? (newest.segno + 1n) * BigInt(seg) : parseLsn(backup.physical!.stopLsn);
}

/**
 * The archived WAL files a restore from `backup` replays up to `replayTo` that the backup does not hold whole: the
 * segments from the one its streamed WAL ends in (the backup's copy of that one ends where the backup did) through the
 * one after replayTo's (the record recovery stops at may begin there), on the timelines recovery follows, and those
 * timelines' history files. A restore not started copies them into its pg_wal, where PostgreSQL looks when the
 * restore_command has a file no longer.
 */
export function walToKeep(catalog: Catalog, backup: BackupRecord, replayTo: bigint): string[] {
  const seg = backup.server.walSegmentBytes;
  const archive = archiveFrom(catalog, backup);
  const first = parseLsn(backup.physical!.stopLsn) / BigInt(seg);
  const last = replayTo / BigInt(seg) + 1n;
  const segments = archive.segments.filter((name) => {
    const { segno } = parseSegment(name, seg)!;
    return segno >= first && segno <= last;
  });
  const histories = catalog.walFiles.filter((f) => {
    const m = HISTORY_RE.exec(f);
    return m !== null && parseInt(m[1]!, 16) <= archive.timeline;
  });
  return [...histories.sort(), ...segments];
}
