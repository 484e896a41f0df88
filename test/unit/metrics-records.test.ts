// One metrics writer and the drill records: what Prometheus and the health
// check read, from the one place each is written.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LocalRepository } from '../../ops-scripts/lib/backup/repository.ts';
import type { DrillReport } from '../../ops-scripts/lib/drill/drill.ts';
import { drillRecords, lastPassingDrill, LEGACY_HISTORY, recordDrill } from '../../ops-scripts/lib/drill/records.ts';
import { METRICS, renderMetrics, writeMetricsFile, type MetricName } from '../../ops-scripts/lib/metrics.ts';
import { run } from '../../ops-scripts/lib/run.ts';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'edupulse-records-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const drill = (id: string, startedAt: string, passed: boolean): DrillReport => ({
  id,
  startedAt,
  target: `time ${startedAt}`,
  backupId: '20261124T220000Z',
  passed,
  rto: { totalSeconds: 12.5 },
  rpoSeconds: 0.25,
  checks: [
    { name: 'data exactness (canaries)', status: passed ? 'passed' : 'failed', detail: '-' },
    { name: 'not proven', status: 'skipped', detail: '-' },
  ],
});

test('metrics: HELP and TYPE once per metric, labels escaped, non-finite values left out', () => {
  const text = renderMetrics([
    { name: 'edupulse_health_check', labels: { component: 'postgres', check: 'a"b\\c\nd' }, value: 2 },
    { name: 'edupulse_health_check', labels: { component: 'redis', check: 'ping' }, value: 0 },
    { name: 'edupulse_health_value', labels: { component: 'redis', check: 'ping' }, value: Number.NaN },
  ]);
  assert.is(text.match(/^# HELP edupulse_health_check /gm)?.length, 1);
  assert.is(text.match(/^# TYPE edupulse_health_check gauge$/gm)?.length, 1);
  assert.match(text, /^edupulse_health_check\{component="postgres",check="a\\"b\\\\c\\nd"\} 2$/m);
  assert.not.match(text, /edupulse_health_value/, 'a metric with no finite sample is not written at all');
});

test('metrics files are written whole (atomically) and readable by the exporter', () =>
  withDir((dir) => {
    const path = writeMetricsFile(join(dir, 'metrics'), 'edupulse_vacuum.prom', [
      { name: 'edupulse_vacuum_duration_seconds', value: 1.5 },
    ]);
    assert.is(statSync(path).mode & 0o777, 0o644);
    assert.match(readFileSync(path, 'utf8'), /^edupulse_vacuum_duration_seconds 1.5$/m);
  }));

test('drill records: one JSON per drill, the history rendered from them, the last passing one found without parsing Markdown', () =>
  withDir((root) => {
    const repo = new LocalRepository(root);
    recordDrill(repo, drill('drill-1', '2026-11-20T10:00:00.000Z', true));
    recordDrill(repo, drill('drill-2', '2026-11-21T10:00:00.000Z', false));
    assert.equal(
      drillRecords(repo).map((r) => r.id),
      ['drill-1', 'drill-2'],
    );
    assert.is(statSync(join(root, 'drills', 'drill-1.json')).mode & 0o777, 0o600);
    assert.is(lastPassingDrill(repo), Date.parse('2026-11-20T10:00:00.000Z'), 'a failed drill is not a passing one');
    const history = readFileSync(join(root, 'drill-history.md'), 'utf8');
    assert.match(history, /\| 2026-11-20T10:00:00.000Z \| .* \| passed \| 2 checks passed or not applicable \|/);
    assert.match(history, /\| 2026-11-21T10:00:00.000Z \| .* \| FAILED \| failed: data exactness \(canaries\) \|/);
    // The history is derived: deleting a line by hand changes nothing the health check or metrics see.
    writeFileSync(join(root, 'drill-history.md'), '');
    assert.is(lastPassingDrill(repo), Date.parse('2026-11-20T10:00:00.000Z'));
  }));

test('a history written before records existed is kept as it was, and the new one points at it', () =>
  withDir((root) => {
    const repo = new LocalRepository(root);
    writeFileSync(join(root, 'drill-history.md'), '| 2026-01-01T00:00:00Z | old | x | 1s | - | passed | 4 passed |\n');
    recordDrill(repo, drill('drill-3', '2026-11-22T10:00:00.000Z', true));
    assert.match(readFileSync(join(root, LEGACY_HISTORY), 'utf8'), /2026-01-01T00:00:00Z \| old/);
    assert.match(
      readFileSync(join(root, 'drill-history.md'), 'utf8'),
      new RegExp(LEGACY_HISTORY.replace(/\./g, '\\.')),
    );
    assert.ok(existsSync(join(root, 'drills', 'drill-3.json')));
  }));

test('every declared metric follows the Prometheus conventions (promtool check metrics)', async () => {
  const text = renderMetrics(
    (Object.keys(METRICS) as MetricName[]).map((name) => ({
      name,
      labels: { component: 'postgres', check: 'x' },
      value: 1,
    })),
  );
  const r = await run('promtool', ['check', 'metrics'], { input: text, nothrow: true });
  assert.is(r.code, 0, r.stdout + r.stderr);
});

test.run();
