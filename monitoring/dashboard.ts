// The Grafana dashboard (importable JSON: `edupulse-db monitoring:dashboard >
// edupulse.json`, then Dashboards > Import), built from the metrics of
// ops-scripts/lib/metrics.ts and the thresholds of infra/settings.ts, so it
// names no metric we do not write and no limit written elsewhere.
import type { Settings } from '../infra/settings.ts';
import type { MetricName } from '../ops-scripts/lib/metrics.ts';

export interface Panel {
  title: string;
  /** What the panel answers, shown as its description. */
  answers: string;
  type: 'timeseries' | 'stat';
  unit: string;
  queries: Array<{ expr: string; legend: string }>;
  thresholds?: [number, number];
}

const m = (name: MetricName) => name;
const health = (check: string) => `${m('edupulse_health_value')}{check="${check}"}`;

export function dashboardPanels(settings: Settings): Panel[] {
  const th = settings.maintenance.health;
  return [
    {
      title: 'Age of the newest backup',
      answers: 'How far back would a restore from the newest backup start; red past the critical threshold.',
      type: 'stat',
      unit: 's',
      queries: [{ expr: `time() - ${m('edupulse_backup_last_success_timestamp_seconds')}`, legend: '{{kind}}' }],
      thresholds: [th.physicalBackupAgeHours[0] * 3600, th.physicalBackupAgeHours[1] * 3600],
    },
    {
      title: 'Backup runs',
      answers: 'Did the latest run of each kind succeed (1) or fail (0)?',
      type: 'stat',
      unit: 'none',
      queries: [{ expr: m('edupulse_backup_last_run_success'), legend: '{{kind}}' }],
    },
    {
      title: 'Backup size and duration',
      answers: 'How big and how slow the newest backup is, over time.',
      type: 'timeseries',
      unit: 'bytes',
      queries: [
        { expr: m('edupulse_backup_size_bytes'), legend: 'stored {{kind}}' },
        { expr: m('edupulse_backup_duration_seconds'), legend: 'seconds {{kind}}' },
      ],
    },
    {
      title: 'WAL waiting for the archiver',
      answers: 'Is point-in-time recovery keeping up with the server (segments not yet archived; archiver failing)?',
      type: 'timeseries',
      unit: 'none',
      queries: [
        { expr: health('archive_ready_segments'), legend: 'segments waiting' },
        { expr: health('archiver_failing'), legend: 'archiver failing' },
      ],
      thresholds: th.archiveReadySegments,
    },
    {
      title: 'Last proven restore',
      answers: 'When did a recovery drill last pass, and did the latest one pass?',
      type: 'stat',
      unit: 's',
      queries: [
        {
          expr: `time() - ${m('edupulse_drill_last_success_timestamp_seconds')}`,
          legend: 'since the last passing drill',
        },
        { expr: m('edupulse_drill_last_run_success'), legend: 'latest drill passed' },
      ],
      thresholds: [th.drillAgeDays[0] * 86400, th.drillAgeDays[1] * 86400],
    },
    {
      title: 'Drill RTO and RPO',
      answers: 'How long would a restore take (RTO) and how close to the target does it get (RPO), over time?',
      type: 'timeseries',
      unit: 's',
      queries: [
        { expr: m('edupulse_drill_rto_seconds'), legend: 'RTO' },
        { expr: m('edupulse_drill_rpo_seconds'), legend: 'RPO' },
      ],
    },
    {
      title: 'Vacuum and transaction-id age',
      answers: 'Is cleanup held back, and how close is the oldest database to the freeze limit?',
      type: 'timeseries',
      unit: 'percent',
      queries: [
        { expr: health('xid_age_pct_of_freeze_max'), legend: 'xid age % of freeze max' },
        { expr: `100 * ${m('edupulse_vacuum_xmin_horizon_blocked')}`, legend: 'horizon blocked (100 = yes)' },
      ],
      thresholds: th.xidAgePct,
    },
    {
      title: 'Health checks',
      answers: 'Which checks are warning (1) or critical (2) right now?',
      type: 'stat',
      unit: 'none',
      queries: [{ expr: `${m('edupulse_health_check')} > 0`, legend: '{{component}} {{check}}' }],
    },
  ];
}

/** Grafana's dashboard model (schemaVersion 39), with a Prometheus data source chosen at import. */
export function renderDashboard(settings: Settings): string {
  const panels = dashboardPanels(settings).map((p, i) => ({
    id: i + 1,
    title: p.title,
    description: p.answers,
    type: p.type,
    datasource: { type: 'prometheus', uid: '${DS_PROMETHEUS}' },
    gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: Math.floor(i / 2) * 8 },
    fieldConfig: {
      defaults: {
        unit: p.unit,
        ...(p.thresholds
          ? {
              thresholds: {
                mode: 'absolute',
                steps: [
                  { color: 'green', value: null },
                  { color: 'orange', value: p.thresholds[0] },
                  { color: 'red', value: p.thresholds[1] },
                ],
              },
            }
          : {}),
      },
      overrides: [],
    },
    targets: p.queries.map((q, j) => ({
      refId: String.fromCharCode(65 + j),
      expr: q.expr,
      legendFormat: q.legend,
      datasource: { type: 'prometheus', uid: '${DS_PROMETHEUS}' },
    })),
  }));
  return JSON.stringify(
    {
      __inputs: [{ name: 'DS_PROMETHEUS', label: 'Prometheus', type: 'datasource', pluginId: 'prometheus' }],
      title: 'EduPulse data layer: backups, recovery, maintenance',
      uid: 'edupulse-db',
      schemaVersion: 39,
      time: { from: 'now-7d', to: 'now' },
      refresh: '1m',
      tags: ['edupulse', 'postgresql'],
      panels,
    },
    null,
    2,
  );
}
