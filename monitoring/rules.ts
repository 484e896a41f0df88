// The Prometheus alerting rules for what the jobs write (node_exporter's
// textfile collector reads lib/metrics.ts's files), rendered from the same
// settings `health` grades with, never written twice: `edupulse-db
// monitoring:rules` prints them for Prometheus's rule_files. Server metrics
// (connections, replication, locks) are postgres_exporter's; these cover what
// it cannot see: backups, drills, vacuum planning, the WAL archive and health.
import yaml from 'js-yaml';
import type { HealthThresholds, Settings } from '../infra/settings.ts';
import type { MetricName } from '../ops-scripts/lib/metrics.ts';

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: 'warning' | 'critical'; [label: string]: string };
  annotations: { summary: string; description: string };
}

const m = (name: MetricName) => name;
const hours = (h: number) => h * 3600;
const days = (d: number) => d * 86400;

/** An alert at each of the [warn, critical] levels of a health threshold. */
function graded(
  name: string,
  expr: (limit: number) => string,
  [warn, critical]: [number, number],
  summary: string,
  description: (limit: number) => string,
  labels: Record<string, string> = {},
): AlertRule[] {
  return (
    [
      ['warning', warn],
      ['critical', critical],
    ] as const
  ).map(([severity, limit]) => ({
    alert: name,
    expr: expr(limit),
    labels: { ...labels, severity },
    annotations: { summary, description: description(limit) },
  }));
}

export function alertRules(th: HealthThresholds): AlertRule[] {
  const backupAge = (kind: 'physical' | 'logical', limits: [number, number]) =>
    graded(
      'EdupulseBackupTooOld',
      (h) => `time() - ${m('edupulse_backup_last_success_timestamp_seconds')}{kind="${kind}"} > ${hours(h)}`,
      limits,
      `The newest ${kind} backup is too old`,
      (h) => `The newest complete ${kind} backup of {{ $labels.instance }} finished more than ${h} h ago.`,
      { kind },
    );
  const health = (check: string) => `${m('edupulse_health_value')}{check="${check}"}`;
  return [
    ...backupAge('physical', th.physicalBackupAgeHours),
    ...backupAge('logical', th.logicalBackupAgeHours),
    {
      alert: 'EdupulseBackupMissing',
      expr: `absent(${m('edupulse_backup_last_success_timestamp_seconds')}{kind="physical"})`,
      for: '1h',
      labels: { severity: 'critical' },
      annotations: {
        summary: 'No physical backup is reported',
        description: 'No node reports a complete physical backup (or the backup metrics are not collected).',
      },
    },
    {
      alert: 'EdupulseBackupJobFailed',
      expr: `${m('edupulse_backup_last_run_success')} == 0`,
      labels: { severity: 'critical' },
      annotations: {
        summary: 'The latest backup run failed',
        description: 'The latest {{ $labels.kind }} backup run on {{ $labels.instance }} failed; see its log.',
      },
    },
    ...graded(
      'EdupulseDrillTooOld',
      (d) => `time() - ${m('edupulse_drill_last_success_timestamp_seconds')} > ${days(d)}`,
      th.drillAgeDays,
      'No passing recovery drill recently',
      (d) => `The latest passing recovery drill on {{ $labels.instance }} ran more than ${d} days ago.`,
    ),
    {
      alert: 'EdupulseDrillFailed',
      expr: `${m('edupulse_drill_last_run_success')} == 0`,
      labels: { severity: 'critical' },
      annotations: {
        summary: 'The latest recovery drill failed',
        description: 'A restore from backup did not verify on {{ $labels.instance }}: see the drill history.',
      },
    },
    {
      alert: 'EdupulseVacuumHorizonBlocked',
      expr: `${m('edupulse_vacuum_xmin_horizon_blocked')} == 1`,
      for: '1h',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'Vacuum cannot remove dead rows',
        description: 'An open transaction, prepared transaction or replication slot holds the xmin horizon back.',
      },
    },
    ...graded(
      'EdupulseXidAgeHigh',
      (pct) => `${health('xid_age_pct_of_freeze_max')} > ${pct}`,
      th.xidAgePct,
      'Transaction-id age near the freeze limit',
      (pct) => `The oldest database uses more than ${pct}% of autovacuum_freeze_max_age.`,
    ),
    ...graded(
      'EdupulseWalArchiveLagging',
      (n) => `${health('archive_ready_segments')} > ${n}`,
      th.archiveReadySegments,
      'WAL is waiting to be archived',
      (n) => `More than ${n} WAL segments wait for the archiver: point-in-time recovery falls behind.`,
    ),
    {
      alert: 'EdupulseWalArchivingFailing',
      expr: `${health('archiver_failing')} == 1`,
      labels: { severity: 'critical' },
      annotations: {
        summary: 'WAL archiving is failing',
        description: 'The archiver has failed since its last success: nothing newer is recoverable.',
      },
    },
    {
      alert: 'EdupulseHealthCritical',
      expr: `${m('edupulse_health_check')} == 2`,
      labels: { severity: 'critical' },
      annotations: {
        summary: 'A health check is critical',
        description: '{{ $labels.component }} {{ $labels.check }} is critical (edupulse-db health shows why).',
      },
    },
  ];
}

/** Recording rules: the ages a dashboard and an ad-hoc query want, computed once. */
export function recordingRules(): Array<{ record: string; expr: string }> {
  return [
    { record: 'edupulse:backup_age_seconds', expr: `time() - ${m('edupulse_backup_last_success_timestamp_seconds')}` },
    {
      record: 'edupulse:drill_success_age_seconds',
      expr: `time() - ${m('edupulse_drill_last_success_timestamp_seconds')}`,
    },
  ];
}

/** The rules file (Prometheus's rule_files format). */
export function renderRules(settings: Settings): string {
  return (
    '# Rendered by `edupulse-db monitoring:rules` from infra/settings.ts; do not edit.\n' +
    yaml.dump(
      {
        groups: [
          { name: 'edupulse-recording', rules: recordingRules() },
          { name: 'edupulse', rules: alertRules(settings.maintenance.health) },
        ],
      },
      { lineWidth: 200, noRefs: true },
    )
  );
}
