// The Grafana dashboard: every panel's query is valid PromQL (checked by
// promtool, as recording rules), names only metrics we write, and its
// thresholds are the settings'.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSettings } from '../../infra/settings.ts';
import { renderDashboard } from '../../monitoring/dashboard.ts';
import { METRICS } from '../../ops-scripts/lib/metrics.ts';
import { run } from '../../ops-scripts/lib/run.ts';

const dashboard = JSON.parse(renderDashboard(defaultSettings));
const targets = dashboard.panels.flatMap((p: any) =>
  p.targets.map((t: any) => ({ panel: p.title, expr: t.expr as string })),
);

test('the dashboard is Grafana JSON with a data source chosen at import and a panel per question', () => {
  assert.is(dashboard.uid, 'edupulse-db');
  assert.equal(
    dashboard.__inputs.map((i: any) => i.pluginId),
    ['prometheus'],
  );
  assert.ok(dashboard.panels.length >= 8);
  for (const p of dashboard.panels) {
    assert.ok(p.description, `${p.title} says what it answers`);
    assert.ok(p.targets.length > 0, `${p.title} has a query`);
  }
});

test('every panel query parses as PromQL (promtool check rules, each query as a recording rule)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edupulse-dashboard-'));
  try {
    const rules = {
      groups: [
        {
          name: 'dashboard',
          rules: targets.map((t: any, i: number) => ({ record: `edupulse:panel_${i}`, expr: t.expr })),
        },
      ],
    };
    writeFileSync(join(dir, 'queries.yml'), yaml.dump(rules));
    const r = await run('promtool', ['check', 'rules', join(dir, 'queries.yml')], { nothrow: true });
    assert.is(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`SUCCESS: ${targets.length} rules found`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every metric a panel names is one the jobs write', () => {
  for (const t of targets) {
    const names = t.expr.match(/\bedupulse_[a-z_]+/g) ?? [];
    assert.ok(names.length > 0, `${t.panel}: ${t.expr}`);
    for (const n of names) assert.ok(n in METRICS, `${t.panel}: ${n} is declared in lib/metrics.ts`);
  }
});

test('thresholds come from the settings', () => {
  const age = dashboard.panels.find((p: any) => p.title === 'Age of the newest backup');
  const steps = age.fieldConfig.defaults.thresholds.steps.map((s: any) => s.value);
  const [warn, critical] = defaultSettings.maintenance.health.physicalBackupAgeHours;
  assert.equal(steps, [null, warn * 3600, critical * 3600]);
});

test.run();
