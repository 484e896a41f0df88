// Incremental physical backups, where the server supports them: PostgreSQL 17's
// `pg_basebackup --incremental=<parent's backup_manifest>` (with
// summarize_wal = on) sends only the blocks changed since the parent, and
// `pg_combinebackup` rebuilds a full data directory from the chain (a full
// backup, then each incremental on top of the one before) before recovery.
// On 15 and 16 there is none: `backup --incremental` takes a full backup and
// says so. What is decided here is pure (and unit-tested; PostgreSQL 17 is
// not installable on the machine the tests run on): the capability, the
// parent, the chain a restore combines, and what retention must keep.
import { failed } from '../errors.ts';
import type { BackupRecord } from './repository.ts';

export const INCREMENTAL_MIN_MAJOR = 17;

export const canIncremental = (major: number) => major >= INCREMENTAL_MIN_MAJOR;

/**
 * The backup an incremental builds on: the newest complete, verified physical backup of the same
 * cluster (system identifier) and major version; undefined when there is none (then a full one is taken).
 */
export function incrementalParent(
  records: BackupRecord[],
  server: { systemIdentifier: string; major: number },
): BackupRecord | undefined {
  return records
    .filter(
      (r) =>
        r.kind === 'physical' &&
        r.physical &&
        r.verification.ok &&
        r.server.systemIdentifier === server.systemIdentifier &&
        r.server.major === server.major,
    )
    .sort((a, b) => a.finishedAt.localeCompare(b.finishedAt))
    .pop();
}

/** The chain a restore of `backup` combines: its full ancestor first, `backup` last. A missing link is an error. */
export function chainOf(records: BackupRecord[], backup: BackupRecord): BackupRecord[] {
  const byId = new Map(records.map((r) => [r.id, r]));
  const chain = [backup];
  for (let r = backup; r.physical?.incremental;) {
    const parent = byId.get(r.physical.incremental.parent);
    if (!parent)
      throw failed(
        `backup ${backup.id} is incremental and its chain is broken: ${r.physical.incremental.parent} (the parent of ${r.id}) is gone`,
        'restore from a full backup or an intact chain (backup:list), and take a full backup',
      );
    if (chain.includes(parent)) throw failed(`backup ${backup.id}: its chain of incrementals loops at ${parent.id}`);
    chain.unshift(parent);
    r = parent;
  }
  return chain;
}

/** pg_combinebackup's arguments: the chain's extracted directories, oldest first, into `out`. */
export const combineArgs = (dirs: string[], out: string) => ['--output', out, '--manifest-checksums=SHA256', ...dirs];

/** The backups retention must keep beyond `kept`: every ancestor of a kept incremental (it is useless without them). */
export function ancestorsToKeep(records: BackupRecord[], kept: BackupRecord[]): Set<string> {
  const out = new Set<string>();
  for (const r of kept) {
    if (!r.physical?.incremental) continue;
    try {
      for (const a of chainOf(records, r)) if (a !== r) out.add(a.id);
    } catch {
      // A broken chain keeps what is left of it; backup:verify reports the break.
      const byId = new Map(records.map((x) => [x.id, x]));
      for (
        let p = byId.get(r.physical.incremental.parent);
        p;
        p = p.physical?.incremental ? byId.get(p.physical.incremental.parent) : undefined
      )
        out.add(p.id);
    }
  }
  return out;
}

/** What verification adds for an incremental: its chain must be complete. */
export function chainProblems(records: BackupRecord[], backup: BackupRecord): string[] {
  if (!backup.physical?.incremental) return [];
  try {
    chainOf(records, backup);
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}
