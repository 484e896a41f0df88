// What every backup starts with: a new id (by time; suffixed if a backup of
// that second exists), its private directory, and the server's identity.
import { existsSync } from 'node:fs';
import { withClient } from '../db.ts';
import { refused } from '../errors.ts';
import { ensurePrivateDir, fsSpace } from '../files.ts';
import { bytes } from '../format.ts';
import type { BackupContext } from './context.ts';
import { newBackupId, type BackupKind, type BackupRecord } from './repository.ts';

export interface ServerFacts {
  version: string;
  major: number;
  systemIdentifier: string;
  walSegmentBytes: number;
}

/**
 * The server's identity, and the bytes of data a backup reads: every database's (physical), or `database`'s
 * (logical). One connection, one query.
 */
async function serverFacts(ctx: BackupContext, database?: string): Promise<{ facts: ServerFacts; rawBytes: number }> {
  return withClient(ctx.admin, async (c) => {
    const { rows } = await c.query(
      `SELECT current_setting('server_version') AS version,
        current_setting('server_version_num')::int / 10000 AS major,
        (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
        (SELECT setting::bigint * CASE unit WHEN '8kB' THEN 8192 WHEN 'MB' THEN 1048576 ELSE 1 END
           FROM pg_settings WHERE name = 'wal_segment_size')::float8 AS seg,
        (CASE WHEN $1::text IS NULL THEN (SELECT sum(pg_database_size(oid)) FROM pg_database WHERE datallowconn)
              ELSE pg_database_size($1::text) END)::float8 AS raw`,
      [database ?? null],
    );
    const r = rows[0];
    return {
      facts: { version: r.version, major: r.major, systemIdentifier: r.sysid, walSegmentBytes: r.seg },
      rawBytes: r.raw,
    };
  });
}

export interface BackupStart {
  id: string;
  dir: string;
  started: Date;
  t0: number;
  facts: ServerFacts;
}

/** What a backup of `kind` leaves free at the least on its repository's filesystem: 5% of it, 64 MB at the least. */
const reserveBytes = (fsSize: number) => Math.max(Math.ceil(fsSize * 0.05), 64 * 1048576);

/**
 * Refused (exit 3) when the repository's filesystem would keep less than the reserve after the backup: the
 * repository often shares a disk with the live server's WAL and the WAL archive, and a backup that fills it fails
 * late, or stops the server. The backup's size is estimated from the data's (`rawBytes`) and the stored/raw ratio
 * of the newest backup of its kind (compressed, with none yet: half; uncompressed: all of it).
 */
function checkBackupRoom(ctx: BackupContext, kind: BackupKind, rawBytes: number, compressed: boolean): void {
  const last = ctx.repo.list(kind).at(-1);
  const ratio = !compressed ? 1 : last && last.sizes.rawBytes > 0 ? last.sizes.storedBytes / last.sizes.rawBytes : 0.5;
  const needed = Math.ceil(rawBytes * ratio);
  const dir = ctx.repo.kindDir(kind);
  const { free, size } = fsSpace(dir);
  const reserve = reserveBytes(size);
  if (free - needed < reserve)
    throw refused(
      `the backup repository (${dir}) is on a filesystem with ${bytes(free)} free; a ${kind} backup of ` +
        `${bytes(rawBytes)} of data needs about ${bytes(needed)}, and ${bytes(reserve)} stays free for the server ` +
        'and the WAL archive; no backup was taken',
      'free space there, run `npm run backup:prune`, or move the repository to a larger filesystem (EDUPULSE_REPO_DIR)',
    );
}

export async function beginBackup(
  ctx: BackupContext,
  kind: BackupKind,
  opts: { compressed: boolean; database?: string },
): Promise<BackupStart> {
  const started = new Date();
  const t0 = performance.now();
  const { facts, rawBytes } = await serverFacts(ctx, opts.database);
  checkBackupRoom(ctx, kind, rawBytes, opts.compressed);
  let id = newBackupId(started);
  for (let n = 2; existsSync(ctx.repo.backupDir(kind, id)); n++) id = `${newBackupId(started)}-${n}`;
  const dir = ctx.repo.backupDir(kind, id);
  ensurePrivateDir(dir, ctx.as);
  return { id, dir, started, t0, facts };
}

/** The fields every backup.json starts with, as the backup finishes. */
export function recordHead(b: BackupStart, kind: BackupKind, label: string | undefined) {
  return {
    format: 1,
    id: b.id,
    kind,
    label: label ?? `edupulse-db ${b.id}`,
    status: 'complete',
    startedAt: b.started.toISOString(),
    finishedAt: new Date().toISOString(),
    durationSeconds: (performance.now() - b.t0) / 1000,
    server: b.facts,
  } satisfies Partial<BackupRecord>;
}
