// The backup job's Prometheus metrics (one file per kind): the last success
// from the repository's own catalog, and how the latest run ended.
import { writeMetricsFile, type Sample } from '../metrics.ts';
import type { BackupContext } from './context.ts';
import type { BackupKind } from './repository.ts';

export function writeBackupMetrics(ctx: BackupContext, kind: BackupKind, lastRunOk: boolean): string {
  const all = ctx.repo.list(kind);
  const newest = all[all.length - 1];
  const labels = { kind };
  const samples: Sample[] = [
    { name: 'edupulse_backup_last_run_success', labels, value: lastRunOk ? 1 : 0 },
    { name: 'edupulse_backups_complete', labels, value: all.length },
    ...(newest
      ? ([
          {
            name: 'edupulse_backup_last_success_timestamp_seconds',
            labels,
            value: Date.parse(newest.finishedAt) / 1000,
          },
          { name: 'edupulse_backup_duration_seconds', labels, value: Number(newest.durationSeconds.toFixed(3)) },
          { name: 'edupulse_backup_size_bytes', labels, value: newest.sizes.storedBytes },
          { name: 'edupulse_backup_verified', labels, value: newest.verification.ok ? 1 : 0 },
        ] satisfies Sample[])
      : []),
  ];
  return writeMetricsFile(ctx.metricsDir, `edupulse_backup_${kind}.prom`, samples);
}
