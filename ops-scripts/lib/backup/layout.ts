// The backup repository's layout, for the local folder and the object store
// alike (paths here are relative: joined to the folder, or used as object keys
// under the store's prefix). Every file name the repository holds is here once.
//   wal/<segment>                 archived WAL segments and timeline history files
//   base/<id>/                    a base backup: tar files, backup_manifest, backup.json
//   logical/<id>/                 a pg_dump archive and backup.json
//   restore-points.json           named restore points (backup:mark)
//   drills/<id>.json              one record per recovery drill
//   drill-history.md              the drills as a table, rendered from drills/
//   .backup.lock                  held by backup and backup:prune (see ../locks.ts)
import type { BackupKind } from './repository.ts';

export const LAYOUT = {
  wal: 'wal',
  kinds: { physical: 'base', logical: 'logical' } satisfies Record<BackupKind, string>,
  record: 'backup.json',
  restorePoints: 'restore-points.json',
  drills: 'drills',
  drillHistory: 'drill-history.md',
  lock: '.backup.lock',
} as const;

/** A backup's directory (or key prefix): base/<id> or logical/<id>. */
export const backupPath = (kind: BackupKind, id: string) => `${LAYOUT.kinds[kind]}/${id}`;

/** An archived WAL file's path (or key). */
export const walPath = (file: string) => `${LAYOUT.wal}/${file}`;

/** The WAL file a wal/ path (or key) names, if it is one. */
export const walFileOf = (key: string) =>
  key.startsWith(`${LAYOUT.wal}/`) ? key.slice(LAYOUT.wal.length + 1) : undefined;
