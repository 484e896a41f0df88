// What backup:list shows: every complete backup with, for a physical one, the
// window it can restore to (from the end of the backup to the newest WAL
// segment archived without a gap after it), whether the object store has it,
// and the unfinished directories that are not backups.
import { statSync } from 'node:fs';
import type { BackupContext } from './context.ts';
import { isOffloaded } from './offload.ts';
import type { BackupKind, BackupRecord } from './repository.ts';
import { archiveStatus } from './verify.ts';

export interface ListedBackup extends BackupRecord {
  recoverable?: { from: string; to: string };
  /** Whether the object store holds it (only when one is configured). */
  offloaded?: boolean;
}

export function listBackups(
  ctx: BackupContext,
  withStore: boolean,
): { backups: ListedBackup[]; unfinished: Array<{ kind: BackupKind; id: string }> } {
  const backups = ctx.repo.list().map((r): ListedBackup => ({
    ...r,
    recoverable: r.physical ? recoverableWindow(ctx, r) : undefined,
    offloaded: withStore ? isOffloaded(ctx, r) : undefined,
  }));
  return { backups, unfinished: ctx.repo.partials() };
}

/** From the end of the backup to when the newest segment reachable from it without a gap was archived. */
export function recoverableWindow(ctx: BackupContext, r: BackupRecord): { from: string; to: string } {
  const from = r.physical!.endedAt;
  const newest = archiveStatus(ctx, r).newest;
  const to = newest ? statSync(ctx.repo.walStoredPath(newest.name)!).mtime.toISOString() : undefined;
  return { from, to: to && to > from ? to : from };
}
