// Prometheus textfile metrics: every metric the jobs write is declared here
// once (name, help, type), and one writer renders and writes them atomically
// into the textfile collector's directory, one file per job, readable by the
// exporter's user (metrics hold no secrets).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './files.ts';

export const METRICS = {
  edupulse_backup_last_run_success: { type: 'gauge', help: '1 if the latest backup run of this kind succeeded.' },
  edupulse_backups_complete: { type: 'gauge', help: 'Complete backups in the repository.' },
  edupulse_backup_last_success_timestamp_seconds: { type: 'gauge', help: 'When the newest complete backup finished.' },
  edupulse_backup_duration_seconds: { type: 'gauge', help: 'How long the newest complete backup took.' },
  edupulse_backup_size_bytes: { type: 'gauge', help: 'Stored size of the newest complete backup.' },
  edupulse_backup_verified: { type: 'gauge', help: '1 if the newest complete backup passed verification.' },
  edupulse_drill_last_run_success: { type: 'gauge', help: '1 if the latest recovery drill passed every check.' },
  edupulse_drill_last_success_timestamp_seconds: { type: 'gauge', help: 'When the latest passing drill ran.' },
  edupulse_drill_rto_seconds: {
    type: 'gauge',
    help: 'Time from the start of the latest passing drill to a verified server.',
  },
  edupulse_drill_rpo_seconds: { type: 'gauge', help: 'Gap between the target and the last replayed commit.' },
  edupulse_vacuum_last_run_timestamp_seconds: { type: 'gauge', help: 'When the vacuum job last ran.' },
  edupulse_vacuum_tables: { type: 'gauge', help: 'Tables by outcome in the last run.' },
  edupulse_vacuum_duration_seconds: { type: 'gauge', help: 'Duration of the last run.' },
  edupulse_vacuum_xmin_horizon_blocked: { type: 'gauge', help: '1 if something held the xmin horizon back.' },
  edupulse_health_check: { type: 'gauge', help: 'Health of each check: 0 ok, 1 warn, 2 critical.' },
  edupulse_health_value: { type: 'gauge', help: 'The measured value of each numeric check.' },
} as const;
export type MetricName = keyof typeof METRICS;

export interface Sample {
  name: MetricName;
  labels?: Record<string, string>;
  value: number;
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/** The Prometheus text exposition of samples: HELP and TYPE once per metric, in declaration order. */
export function renderMetrics(samples: readonly Sample[]): string {
  const lines: string[] = [];
  for (const name of Object.keys(METRICS) as MetricName[]) {
    const mine = samples.filter((s) => s.name === name && Number.isFinite(s.value));
    if (!mine.length) continue;
    const { type, help } = METRICS[name];
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const s of mine) {
      const labels = Object.entries(s.labels ?? {});
      lines.push(
        `${name}${labels.length ? `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}` : ''} ${s.value}`,
      );
    }
  }
  return lines.join('\n') + '\n';
}

/** Writes `<dir>/<file>` atomically (the collector never reads half a file); returns its path. */
export function writeMetricsFile(dir: string, file: string, samples: readonly Sample[]): string {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, file);
  writeFileAtomic(path, renderMetrics(samples), { mode: 0o644 });
  return path;
}
