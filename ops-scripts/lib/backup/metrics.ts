// Prometheus textfile metrics, written atomically (one file per kind) to the
// textfile collector's directory: the last success from the repository's own
// catalog, and how the latest run ended.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../files.ts';
import type { BackupContext } from './context.ts';
import type { BackupKind } from './repository.ts';

export function writeBackupMetrics(ctx: BackupContext, kind: BackupKind, lastRunOk: boolean): string {
  const newest = ctx.repo.list(kind).pop();
  const l = `{kind="${kind}"}`;
  const lines = [
    '# HELP edupulse_backup_last_run_success 1 if the latest backup run of this kind succeeded.',
    '# TYPE edupulse_backup_last_run_success gauge', `edupulse_backup_last_run_success${l} ${lastRunOk ? 1 : 0}`,
    '# HELP edupulse_backup_count Complete backups in the repository.',
    '# TYPE edupulse_backup_count gauge', `edupulse_backup_count${l} ${ctx.repo.list(kind).length}`,
  ];
  if (newest) {
    lines.push(
      '# HELP edupulse_backup_last_success_timestamp_seconds When the newest complete backup finished.',
      '# TYPE edupulse_backup_last_success_timestamp_seconds gauge',
      `edupulse_backup_last_success_timestamp_seconds${l} ${Date.parse(newest.finishedAt) / 1000}`,
      '# HELP edupulse_backup_duration_seconds How long the newest complete backup took.',
      '# TYPE edupulse_backup_duration_seconds gauge', `edupulse_backup_duration_seconds${l} ${newest.durationSeconds.toFixed(3)}`,
      '# HELP edupulse_backup_size_bytes Stored size of the newest complete backup.',
      '# TYPE edupulse_backup_size_bytes gauge', `edupulse_backup_size_bytes${l} ${newest.sizes.storedBytes}`,
      '# HELP edupulse_backup_verified 1 if the newest complete backup passed verification.',
      '# TYPE edupulse_backup_verified gauge', `edupulse_backup_verified${l} ${newest.verification.ok ? 1 : 0}`,
    );
  }
  mkdirSync(ctx.metricsDir, { recursive: true, mode: 0o755 });
  const file = join(ctx.metricsDir, `edupulse_backup_${kind}.prom`);
  // Readable by the node exporter's user: metrics hold no secrets.
  writeFileAtomic(file, lines.join('\n') + '\n', { mode: 0o644 });
  return file;
}
