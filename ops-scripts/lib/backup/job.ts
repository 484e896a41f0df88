// The backup job: one at a time per repository (a lock file naming its
// holder), partial directories of dead runs cleaned, the backup taken and
// verified, retention applied, metrics written.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BACKUP_COMPRESSIONS } from '../../../infra/settings.ts';
import { badInput } from '../errors.ts';
import { offloadAll, type OffloadResult } from './offload.ts';
import { pruneRemote } from './remote-catalog.ts';
import { RemoteStore, remoteSettings } from './remote.ts';
import { killProcessesNaming } from '../process.ts';
import type { BackupContext } from './context.ts';
import { writeBackupMetrics } from './metrics.ts';
import { prune, type PruneResult } from './prune.ts';
import { liveReaders } from './readers.ts';
import { BACKUP_KINDS, type BackupKind, type BackupRecord } from './repository.ts';
import { takePhysicalBackup, type PhysicalOptions } from './take-base-backup.ts';
import { takeLogicalBackup } from './take-logical-backup.ts';

export interface BackupJobOptions extends Partial<PhysicalOptions> {
  type: BackupKind;
  keep: { physical: number; logical: number };
}

export interface BackupJobResult {
  record: BackupRecord;
  cleaned: string[];
  pruned: PruneResult;
  metricsFile: string;
  /** With a remote repository: what was offloaded, or why not (the backups stay complete locally). */
  offload?: OffloadResult;
}

/** Under the lock, anything half-made belongs to a run that died: remove it. */
function cleanPartials(ctx: BackupContext): string[] {
  const cleaned = ctx.repo.partials().map((p) => {
    killProcessesNaming(ctx.repo.backupDir(p.kind, p.id));
    ctx.repo.remove(p.kind, p.id);
    return `${p.kind}/${p.id}`;
  });
  for (const kind of BACKUP_KINDS) {
    for (const name of readdirSync(ctx.repo.kindDir(kind)).filter((n) => n.startsWith('.verify-'))) {
      rmSync(join(ctx.repo.kindDir(kind), name), { recursive: true, force: true });
      cleaned.push(`${kind}/${name}`);
    }
  }
  return cleaned;
}

export function validateBackupOptions(o: BackupJobOptions): void {
  if (!(BACKUP_KINDS as readonly string[]).includes(o.type))
    throw badInput(`unknown backup type "${o.type}"`, `use --type ${BACKUP_KINDS.join(' or --type ')}`);
  if (o.compression !== undefined && !(BACKUP_COMPRESSIONS as readonly string[]).includes(o.compression)) {
    throw badInput(`unknown compression "${o.compression}"`, `use one of ${BACKUP_COMPRESSIONS.join(', ')}`);
  }
  if (o.checkpoint !== undefined && !['fast', 'spread'].includes(o.checkpoint))
    throw badInput(`--checkpoint must be fast or spread, not "${o.checkpoint}"`);
  if (o.incremental && o.type !== 'physical')
    throw badInput('--incremental is for physical backups', 'leave it out with --type logical');
  if (o.maxRate !== undefined) {
    // pg_basebackup's own limits: kilobytes per second (k optional, M for megabytes), from 32 kB/s to 1 GB/s.
    const m = /^(\d+)([kM]?)$/.exec(o.maxRate);
    const kB = m ? Number(m[1]) * (m[2] === 'M' ? 1024 : 1) : NaN;
    if (!(kB >= 32 && kB <= 1048576)) {
      throw badInput(
        `--max-rate ${o.maxRate} is not a rate pg_basebackup accepts`,
        'use 32k to 1024M (kilobytes per second, M for megabytes), for example 10M',
      );
    }
  }
  for (const [kind, n] of Object.entries(o.keep)) {
    if (!Number.isInteger(n) || n < 1)
      throw badInput(
        `--keep-${kind} must be a whole number of at least 1, not ${n}`,
        'retention never removes the last backup',
      );
  }
}

export async function runBackup(ctx: BackupContext, opts: BackupJobOptions): Promise<BackupJobResult> {
  validateBackupOptions(opts);
  // The object store's settings too, before anything is taken: a bad one is exit 2 with nothing changed.
  const remote = remoteSettings();
  ctx.repo.ensureLayout();
  const cleaned = cleanPartials(ctx);
  let record: BackupRecord;
  try {
    record =
      opts.type === 'physical'
        ? await takePhysicalBackup(ctx, {
            compression: opts.compression ?? ctx.settings.backup.compression,
            checkpoint: opts.checkpoint ?? ctx.settings.backup.checkpoint,
            walZstdLevel: ctx.settings.postgres.archiveZstdLevel,
            label: opts.label,
            maxRate: opts.maxRate,
            incremental: opts.incremental,
            ...(opts.fromStandby ? { fromStandby: opts.fromStandby } : {}),
            onProgress: opts.onProgress,
          })
        : await takeLogicalBackup(ctx, { label: opts.label });
  } catch (err) {
    writeBackupMetrics(ctx, opts.type, false);
    throw err;
  }
  const pruned = prune(ctx, opts.keep);
  let offload: OffloadResult | undefined;
  if (remote) {
    const store = new RemoteStore(remote);
    try {
      offload = await offloadAll(ctx, store, remote.mode === 'remote' ? 'remote' : 'copy');
      // The store's retention waits too while a restore or drill on this host reads (one from the store included).
      if (offload.ok && !liveReaders(ctx.repo.root).length) {
        const { deferred } = await pruneRemote(store, opts.keep);
        if (deferred) offload.retentionDeferred = deferred;
      }
    } catch (err) {
      offload = { ok: false, offloaded: offload?.offloaded ?? [], error: (err as Error).message };
    } finally {
      store.close();
    }
  }
  // Pages that failed their checksum: the backup is complete, but the run reports failure (alerts, exit 1).
  const metricsFile = writeBackupMetrics(ctx, opts.type, !record.checksumFailures?.length);
  return { record, cleaned, pruned, offload, metricsFile };
}

/** backup:prune: retention on its own (the command layer holds the repository lock, as for backup). */
export async function runPrune(
  ctx: BackupContext,
  keep: { physical: number; logical: number },
  dryRun: boolean,
): Promise<PruneResult> {
  ctx.repo.ensureLayout();
  return prune(ctx, keep, { dryRun });
}
