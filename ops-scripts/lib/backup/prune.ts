// Retention: keep the newest N physical and M logical backups, and the WAL
// the oldest kept physical backup needs (segments from its start on; history
// files always). Never below one backup of a kind.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { WAL_ZSTD_AGE, walStoredForms } from './layout.ts';
import { badInput } from '../errors.ts';
import type { BackupContext } from './context.ts';
import { BACKUP_KINDS, type BackupKind, type BackupRecord } from './repository.ts';
import { parseSegment } from './wal.ts';
import { ancestorsToKeep } from './incremental.ts';
import { describeReaders, liveReaders } from './readers.ts';

export interface PruneResult {
  removed: Array<{ kind: BackupKind; id: string }>;
  walRemoved: string[];
  dryRun: boolean;
  /** Set when nothing was removed because restores or drills are reading the repository (./readers.ts). */
  deferred?: string;
}

export type Keep = { physical: number; logical: number };

export function validateKeep(keep: Keep): void {
  for (const [kind, n] of Object.entries(keep)) {
    if (!Number.isInteger(n) || n < 1)
      throw badInput(
        `keep ${kind} must be a whole number of at least 1, not ${n}`,
        'retention never removes the last backup',
      );
  }
}

/** What retention removes from a catalog (the local repository's or the store's): pure. */
export function retentionPlan(records: BackupRecord[], walFiles: string[], keep: Keep): Omit<PruneResult, 'dryRun'> {
  validateKeep(keep);
  const removed: PruneResult['removed'] = [];
  for (const kind of BACKUP_KINDS) {
    const all = records.filter((r) => r.kind === kind);
    const cut = Math.max(0, all.length - keep[kind]);
    // An incremental kept keeps its chain: the backups it builds on stay, whatever their age.
    const chains = ancestorsToKeep(records, all.slice(cut));
    for (const r of all.slice(0, cut)) if (!chains.has(r.id)) removed.push({ kind, id: r.id });
  }
  const oldest = records.filter((r) => r.kind === 'physical' && !removed.some((x) => x.id === r.id))[0];
  const walRemoved: string[] = [];
  if (oldest) {
    const seg = oldest.server.walSegmentBytes;
    const start = parseSegment(oldest.physical!.startSegment, seg)!.segno;
    for (const f of walFiles) {
      const s = parseSegment(f.slice(0, 24), seg);
      // Segments (and .partial or .backup files named after one) older than the oldest kept start.
      if (s && s.segno < start && !f.endsWith('.history')) walRemoved.push(f);
    }
  }
  return { removed, walRemoved };
}

export function prune(ctx: BackupContext, keep: Keep, opts: { dryRun?: boolean } = {}): PruneResult {
  const plan = retentionPlan(ctx.repo.list(), ctx.repo.walFiles(), keep);
  // A restore or drill reading the repository may need what the plan removes: retention waits for the next run.
  const readers = opts.dryRun ? [] : liveReaders(ctx.repo.root);
  if (readers.length && (plan.removed.length || plan.walRemoved.length))
    return { removed: [], walRemoved: [], dryRun: false, deferred: describeReaders(readers) };
  if (!opts.dryRun) {
    for (const r of plan.removed) ctx.repo.remove(r.kind, r.id);
    // Both forms: a mixed archive may hold a segment compressed and plain.
    for (const f of plan.walRemoved)
      for (const stored of [...walStoredForms(f), `${f}${WAL_ZSTD_AGE}.sha256`])
        rmSync(join(ctx.repo.walDir, stored), { force: true });
  }
  return { ...plan, dryRun: Boolean(opts.dryRun) };
}
