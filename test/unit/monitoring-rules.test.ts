// The alerting rules, proven with Prometheus's own tool: `promtool check
// rules` on the rendered file, and `promtool test rules` feeding series and
// asserting which alerts fire and which do not, at the thresholds the
// settings give (the same ones health grades with).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSettings } from '../../infra/settings.ts';
import { alertRules, recordingRules, renderRules } from '../../monitoring/rules.ts';
import { run } from '../../ops-scripts/lib/run.ts';

const th = defaultSettings.maintenance.health;
const rules = alertRules(th);

/** An alert as promtool expects it: labels, and annotations with the templates filled from those labels. */
function fires(alert: string, severity: 'warning' | 'critical', labels: Record<string, string> = {}) {
  const rule = rules.find((r) => r.alert === alert && r.labels.severity === severity)!;
  assert.ok(rule, `${alert} ${severity} is a rule`);
  const fill = (t: string) => t.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => labels[l] ?? '');
  return {
    exp_labels: { ...labels, ...rule.labels },
    exp_annotations: { summary: fill(rule.annotations.summary), description: fill(rule.annotations.description) },
  };
}

type Case = {
  name: string;
  interval: string;
  series: Record<string, string>;
  checks: Array<{ at: string; alert: string; expect: ReturnType<typeof fires>[] }>;
  /** Values of recording rules (promtool's promql_expr_test). */
  exprs?: Array<{ expr: string; eval_time: string; exp_samples: Array<{ labels: string; value: number }> }>;
};

const db = { instance: 'db1' };
const sel = (metric: string, labels: Record<string, string>) =>
  `${metric}{${Object.entries({ ...labels, ...db })
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`;

const cases = (): Case[] => {
  const [bw, bc] = th.physicalBackupAgeHours;
  const [dw, dc] = th.drillAgeDays;
  const [xw, xc] = th.xidAgePct;
  const [aw, ac] = th.archiveReadySegments;
  const physical = { ...db, kind: 'physical' };
  return [
    {
      name: 'a physical backup ages past the warning, then the critical threshold',
      interval: '1h',
      // Finished at time 0: its age is the evaluation time.
      series: { [sel('edupulse_backup_last_success_timestamp_seconds', { kind: 'physical' })]: `0+0x${bc + 2}` },
      checks: [
        { at: `${bw - 1}h`, alert: 'EdupulseBackupTooOld', expect: [] },
        {
          at: `${bw + 1}h`,
          alert: 'EdupulseBackupTooOld',
          expect: [fires('EdupulseBackupTooOld', 'warning', physical)],
        },
        {
          at: `${bc + 1}h`,
          alert: 'EdupulseBackupTooOld',
          expect: [
            fires('EdupulseBackupTooOld', 'warning', physical),
            fires('EdupulseBackupTooOld', 'critical', physical),
          ],
        },
        { at: `${bc + 1}h`, alert: 'EdupulseBackupMissing', expect: [] },
      ],
      exprs: [
        {
          expr: 'edupulse:backup_age_seconds',
          eval_time: `${bw + 1}h`,
          exp_samples: [
            { labels: `edupulse:backup_age_seconds{instance="db1",kind="physical"}`, value: (bw + 1) * 3600 },
          ],
        },
      ],
    },
    {
      name: 'no backup metric at all, for an hour',
      interval: '1m',
      series: { [sel('edupulse_vacuum_duration_seconds', {})]: '1x90' },
      checks: [
        { at: '30m', alert: 'EdupulseBackupMissing', expect: [] },
        {
          at: '61m',
          alert: 'EdupulseBackupMissing',
          expect: [fires('EdupulseBackupMissing', 'critical', { kind: 'physical' })],
        },
      ],
    },
    {
      name: 'a failed backup run and a failed drill page; successful ones do not',
      interval: '1m',
      series: {
        [sel('edupulse_backup_last_run_success', { kind: 'logical' })]: '1 1 0 0',
        [sel('edupulse_drill_last_run_success', {})]: '1 1 0 0',
      },
      checks: [
        { at: '1m', alert: 'EdupulseBackupJobFailed', expect: [] },
        {
          at: '3m',
          alert: 'EdupulseBackupJobFailed',
          expect: [fires('EdupulseBackupJobFailed', 'critical', { ...db, kind: 'logical' })],
        },
        { at: '1m', alert: 'EdupulseDrillFailed', expect: [] },
        { at: '3m', alert: 'EdupulseDrillFailed', expect: [fires('EdupulseDrillFailed', 'critical', db)] },
      ],
    },
    {
      name: 'the last passing drill ages past the declared interval',
      interval: '1d',
      series: { [sel('edupulse_drill_last_success_timestamp_seconds', {})]: `0+0x${dc + 2}` },
      checks: [
        { at: `${dw - 1}d`, alert: 'EdupulseDrillTooOld', expect: [] },
        { at: `${dw + 1}d`, alert: 'EdupulseDrillTooOld', expect: [fires('EdupulseDrillTooOld', 'warning', db)] },
        {
          at: `${dc + 1}d`,
          alert: 'EdupulseDrillTooOld',
          expect: [fires('EdupulseDrillTooOld', 'warning', db), fires('EdupulseDrillTooOld', 'critical', db)],
        },
      ],
    },
    {
      name: 'a blocked xmin horizon warns only once it has lasted an hour',
      interval: '1m',
      series: { [sel('edupulse_vacuum_xmin_horizon_blocked', {})]: '1x90' },
      checks: [
        { at: '30m', alert: 'EdupulseVacuumHorizonBlocked', expect: [] },
        {
          at: '61m',
          alert: 'EdupulseVacuumHorizonBlocked',
          expect: [fires('EdupulseVacuumHorizonBlocked', 'warning', db)],
        },
      ],
    },
    {
      name: 'transaction-id age and WAL waiting for the archiver, at each level; a failing archiver; a critical check',
      interval: '1m',
      series: {
        [sel('edupulse_health_value', { component: 'postgres', check: 'xid_age_pct_of_freeze_max' })]:
          `${xw - 1} ${xw + 1} ${xc + 1}`,
        [sel('edupulse_health_value', { component: 'postgres', check: 'archive_ready_segments' })]:
          `${aw} ${aw + 1} ${ac + 1}`,
        [sel('edupulse_health_value', { component: 'postgres', check: 'archiver_failing' })]: '0 1 1',
        [sel('edupulse_health_check', { component: 'redis', check: 'ping_latency_ms' })]: '1 2 2',
      },
      checks: [
        ...(
          [
            'EdupulseXidAgeHigh',
            'EdupulseWalArchiveLagging',
            'EdupulseWalArchivingFailing',
            'EdupulseHealthCritical',
          ] as const
        ).map((alert) => ({ at: '0m', alert, expect: [] })),
        ...(['xid_age_pct_of_freeze_max', 'archive_ready_segments'] as const).flatMap((check) => {
          const alert = check === 'archive_ready_segments' ? 'EdupulseWalArchiveLagging' : 'EdupulseXidAgeHigh';
          const labels = { ...db, component: 'postgres', check };
          return [
            { at: '1m', alert, expect: [fires(alert, 'warning', labels)] },
            { at: '2m', alert, expect: [fires(alert, 'warning', labels), fires(alert, 'critical', labels)] },
          ];
        }),
        {
          at: '1m',
          alert: 'EdupulseWalArchivingFailing',
          expect: [
            fires('EdupulseWalArchivingFailing', 'critical', {
              ...db,
              component: 'postgres',
              check: 'archiver_failing',
            }),
          ],
        },
        {
          at: '1m',
          alert: 'EdupulseHealthCritical',
          expect: [
            fires('EdupulseHealthCritical', 'critical', { ...db, component: 'redis', check: 'ping_latency_ms' }),
          ],
        },
      ],
    },
  ];
};

function promtoolTests(dir: string, list: Case[]): string {
  const file = join(dir, 'tests.yml');
  const doc = {
    rule_files: ['rules.yml'],
    evaluation_interval: '1m',
    tests: list.map((c) => ({
      name: c.name,
      interval: c.interval,
      input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
      alert_rule_test: c.checks.map((k) => ({ eval_time: k.at, alertname: k.alert, exp_alerts: k.expect })),
      ...(c.exprs ? { promql_expr_test: c.exprs } : {}),
    })),
  };
  writeFileSync(file, yaml.dump(doc, { lineWidth: 300 }));
  return file;
}

async function withRules<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'edupulse-rules-'));
  try {
    writeFileSync(join(dir, 'rules.yml'), renderRules(defaultSettings));
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the rendered rules pass promtool check rules (syntax, templates, no duplicates)', () =>
  withRules(async (dir) => {
    const r = await run('promtool', ['check', 'rules', join(dir, 'rules.yml')], { nothrow: true });
    assert.is(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`SUCCESS: ${rules.length + recordingRules().length} rules found`));
  }));

test('promtool test rules: each alert fires at its threshold from the settings, and not below it', () =>
  withRules(async (dir) => {
    const r = await run('promtool', ['test', 'rules', promtoolTests(dir, cases())], { nothrow: true, cwd: dir });
    assert.is(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS/);
  }));

test('the promtool tests would catch a wrong rule: an alert expected below its threshold fails them', () =>
  withRules(async (dir) => {
    const [bw] = th.physicalBackupAgeHours;
    const wrong: Case = {
      name: 'expects the warning an hour too early',
      interval: '1h',
      series: { [sel('edupulse_backup_last_success_timestamp_seconds', { kind: 'physical' })]: `0+0x${bw + 2}` },
      checks: [
        {
          at: `${bw - 1}h`,
          alert: 'EdupulseBackupTooOld',
          expect: [fires('EdupulseBackupTooOld', 'warning', { ...db, kind: 'physical' })],
        },
      ],
    };
    const r = await run('promtool', ['test', 'rules', promtoolTests(dir, [wrong])], { nothrow: true, cwd: dir });
    assert.is.not(r.code, 0);
    assert.match(r.stdout + r.stderr, /FAILED/);
  }));

test('the thresholds come from the settings: other settings render other limits', () => {
  const s = structuredClone(defaultSettings);
  s.maintenance.health.physicalBackupAgeHours = [2, 4];
  const text = renderRules(s);
  assert.match(text, /edupulse_backup_last_success_timestamp_seconds\{kind="physical"\} > 7200/);
  assert.match(text, /edupulse_backup_last_success_timestamp_seconds\{kind="physical"\} > 14400/);
});

test.run();
