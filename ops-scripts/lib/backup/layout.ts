// The backup repository's layout, for the local folder and the object store
// alike (paths here are relative: joined to the folder, or used as object keys
// under the store's prefix). Every file name the repository holds is here once.
//   wal/<segment>.zst             archived WAL segments (and .partial files), zstd-compressed
//                                 (infra/wal-archive.ts); plain wal/<segment> in archives written
//                                 before compression, read alike; <segment>.zst.age (and the
//                                 segment's SHA-256 in <segment>.zst.age.sha256) when encrypted
//   wal/<tli>.history             timeline history files (and backup history files), plain
//   base/<id>/                    a base backup: tar files, backup_manifest, backup.json
//   logical/<id>/                 a pg_dump archive and backup.json
//   restore-points.json           named restore points (backup:mark)
//   drills/<id>.json              one record per recovery drill
//   drill-history.md              the drills as a table, rendered from drills/
//   wal-archived-at.json          (store only) when each pushed WAL file was archived: the store's own
//                                 times are upload times, and a time target is found by archive time
//   readers/<host>-<pid>.json     (store only) the lease of a restore or drill reading the store, written
//                                 again every minute; retention on the store waits while one is fresh
//   pruners/<host>-<pid>.json     (store only) retention at work on the store, written before it looks for
//                                 leases; a reader that leases meanwhile waits for it (store-readers.ts)
//   .backup.lock                  held by backup and backup:prune (see ../locks.ts)
import type { BackupKind } from './repository.ts';

export const LAYOUT = {
  wal: 'wal',
  kinds: { physical: 'base', logical: 'logical' } satisfies Record<BackupKind, string>,
  record: 'backup.json',
  restorePoints: 'restore-points.json',
  drills: 'drills',
  drillHistory: 'drill-history.md',
  walTimes: 'wal-archived-at.json',
  readers: 'readers',
  pruners: 'pruners',
  lock: '.backup.lock',
} as const;

/** A backup's directory (or key prefix): base/<id> or logical/<id>. */
export const backupPath = (kind: BackupKind, id: string) => `${LAYOUT.kinds[kind]}/${id}`;

/** An archived WAL file's path (or key). */
export const walPath = (file: string) => `${LAYOUT.wal}/${file}`;

/** The WAL file a wal/ path (or key) names, if it is one. */
export const walFileOf = (key: string) =>
  key.startsWith(`${LAYOUT.wal}/`) ? key.slice(LAYOUT.wal.length + 1) : undefined;

/** The suffix of a compressed archived WAL file. */
export const WAL_ZSTD = '.zst';

/** The WAL file names PostgreSQL asks a restore_command for: segments, .partial, timeline and backup history files. */
export const WAL_NAME_RE = /^[0-9A-F]{8}(?:[0-9A-F]{16}(?:\.partial|\.[0-9A-F]{8}\.backup)?|\.history)$/;

/** The suffix of a compressed and encrypted archived WAL file (encryption at rest, crypt.ts). */
export const WAL_ZSTD_AGE = `${WAL_ZSTD}.age`;

/** The forms an archived WAL file may be stored in, preferred first. */
export const walStoredForms = (name: string) => [`${name}${WAL_ZSTD_AGE}`, `${name}${WAL_ZSTD}`, name];

/** The WAL file a stored wal/ name holds. */
export const walNameOf = (stored: string) =>
  stored.endsWith(WAL_ZSTD_AGE)
    ? stored.slice(0, -WAL_ZSTD_AGE.length)
    : stored.endsWith(WAL_ZSTD)
      ? stored.slice(0, -WAL_ZSTD.length)
      : stored;

/**
 * The WAL files an archive listing holds, each with the stored name that holds it: `<name>.zst`,
 * or `<name>` as written before compression (the compressed copy wins when both exist). Anything
 * else in the directory (temp files, strays) is not WAL.
 */
export function walIndex(stored: Iterable<string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of stored) {
    const name = walNameOf(f);
    if (!WAL_NAME_RE.test(name)) continue;
    const held = out.get(name);
    if (!held || walStoredForms(name).indexOf(f) < walStoredForms(name).indexOf(held)) out.set(name, f);
  }
  return out;
}
