// Retention: keep the newest N physical and M logical backups, and the WAL
// the oldest kept physical backup needs (segments from its start on; history
// files always). Never below one backup of a kind.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { badInput } from '../errors.ts';
import type { BackupContext } from './context.ts';
import type { BackupKind } from './repository.ts';
import { parseSegment } from './wal.ts';

export interface PruneResult { removed: Array<{ kind: BackupKind; id: string }>; walRemoved: string[]; dryRun: boolean }

export function prune(ctx: BackupContext, keep: { physical: number; logical: number }, opts: { dryRun?: boolean } = {}): PruneResult {
  for (const [kind, n] of Object.entries(keep)) {
    if (!Number.isInteger(n) || n < 1) throw badInput(`keep ${kind} must be a whole number of at least 1, not ${n}`, 'retention never removes the last backup');
  }
  const removed: PruneResult['removed'] = [];
  for (const kind of ['physical', 'logical'] as const) {
    const all = ctx.repo.list(kind);
    for (const r of all.slice(0, Math.max(0, all.length - keep[kind]))) removed.push({ kind, id: r.id });
  }
  const keptPhysical = ctx.repo.list('physical').filter((r) => !removed.some((x) => x.id === r.id));
  const walRemoved: string[] = [];
  const oldest = keptPhysical[0];
  if (oldest) {
    const seg = oldest.server.walSegmentBytes;
    const start = parseSegment(oldest.physical!.startSegment, seg)!.segno;
    for (const f of ctx.repo.walFiles()) {
      const s = parseSegment(f.slice(0, 24), seg);
      // Segments (and .partial or .backup files named after one) older than the oldest kept start.
      if (s && s.segno < start && !f.endsWith('.history')) walRemoved.push(f);
    }
  }
  if (!opts.dryRun) {
    for (const r of removed) ctx.repo.remove(r.kind, r.id);
    for (const f of walRemoved) rmSync(join(ctx.repo.walDir, f), { force: true });
  }
  return { removed, walRemoved, dryRun: Boolean(opts.dryRun) };
}
