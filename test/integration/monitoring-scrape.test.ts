// A real scrape: Debian's prometheus-node-exporter with only its textfile
// collector pointed at the jobs' metrics directory, a real Prometheus scraping
// it every second with the rendered rules, a real backup and drill; asserted
// through Prometheus's HTTP API: the metrics arrive with their names, labels
// and values, and the stale-backup alert fires once the backup is older than
// the (test-sized) threshold, not before.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSettings } from '../../infra/settings.ts';
import { renderRules } from '../../monitoring/rules.ts';
import { run } from '../../ops-scripts/lib/run.ts';
import { runJob } from '../cli.ts';
import { freePort, logged, startTestStack, type TestStack } from '../harness.ts';

let stack: TestStack;
const children: ChildProcess[] = [];
let api = '';
/** The stale-backup threshold for this test: long enough to see the alert inactive first. */
const STALE_SECONDS = 40;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function start(cmd: string, args: string[]): ChildProcess {
  // In a process group of its own, killed whole when the test ends (and by the exit hook if it dies);
  // the parent-death signal kills it even when the test process is killed outright.
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args], { stdio: 'ignore', detached: true });
  children.push(child);
  return child;
}

process.on('exit', () => {
  for (const c of children)
    if (c.pid)
      try {
        process.kill(-c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
});

async function query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as {
    status: string;
    data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
  };
  assert.is(body.status, 'success');
  return body.data.result;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, seconds = 60): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

let backup: { record: { id: string; sizes: { storedBytes: number } } };

test.before(
  logged(async () => {
    stack = await startTestStack();
    // A drill first (it takes its own backup only if none exists: take one), then the backup whose age is watched.
    assert.is((await runJob('backup', ['--type', 'physical', '--json'], stack.env)).code, 0);
    const drill = await runJob('drill', ['--json'], stack.env);
    assert.is(drill.code, 0, drill.stderr);
    const b = await runJob('backup', ['--type', 'physical', '--json'], stack.env);
    assert.is(b.code, 0, b.stderr);
    backup = JSON.parse(b.stdout);

    const dir = join(stack.ctx.paths.root, 'prometheus');
    mkdirSync(dir, { recursive: true });
    const settings = structuredClone(defaultSettings);
    settings.maintenance.health.physicalBackupAgeHours = [STALE_SECONDS / 3600, 1000];
    writeFileSync(join(dir, 'rules.yml'), renderRules(settings));
    const exporterPort = await freePort();
    const promPort = await freePort();
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        'rule_files: [rules.yml]',
        'scrape_configs:',
        `  - { job_name: edupulse, static_configs: [{ targets: ['127.0.0.1:${exporterPort}'] }] }`,
        '',
      ].join('\n'),
    );
    start('prometheus-node-exporter', [
      '--collector.disable-defaults',
      '--collector.textfile',
      `--collector.textfile.directory=${stack.ctx.paths.metricsDir}`,
      `--web.listen-address=127.0.0.1:${exporterPort}`,
    ]);
    start('prometheus', [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ]);
    api = `http://127.0.0.1:${promPort}`;
    await until('Prometheus to be ready', async () => ((await fetch(`${api}/-/ready`)).ok ? true : undefined));
  }),
);

test.after(async () => {
  for (const c of children)
    if (c.pid)
      try {
        process.kill(-c.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
  await stack?.stop();
});

test('the textfiles the jobs wrote pass promtool check metrics', async () => {
  const files = readdirSync(stack.ctx.paths.metricsDir).filter((f) => f.endsWith('.prom'));
  assert.ok(files.includes('edupulse_backup_physical.prom') && files.includes('edupulse_drill.prom'), files.join(', '));
  for (const f of files) {
    const r = await run('promtool', ['check', 'metrics'], {
      input: readFileSync(join(stack.ctx.paths.metricsDir, f), 'utf8'),
      nothrow: true,
    });
    assert.is(r.code, 0, `${f}: ${r.stdout}${r.stderr}`);
  }
});

test('the backup and drill metrics arrive through node_exporter with their labels and values', async () => {
  const success = await until('the backup metrics', async () => {
    const r = await query('edupulse_backup_last_run_success');
    return r.length ? r : undefined;
  });
  assert.equal(
    success.map((s) => [s.metric.kind, s.metric.job, s.value[1]]),
    [['physical', 'edupulse', '1']],
  );
  const size = await query('edupulse_backup_size_bytes{kind="physical"}');
  assert.is(
    Number(size[0]!.value[1]),
    backup.record.sizes.storedBytes,
    'the size of the newest backup, as backup.json has it',
  );
  assert.is((await query('edupulse_backups_complete{kind="physical"}'))[0]!.value[1], '2');
  assert.is((await query('edupulse_drill_last_run_success'))[0]!.value[1], '1');
  const rto = Number((await query('edupulse_drill_rto_seconds'))[0]!.value[1]);
  assert.ok(rto > 0 && rto < 600, `a drill RTO in seconds: ${rto}`);
});

test('the stale-backup alert is inactive while the backup is fresh and fires once it is older than the threshold', async () => {
  const firing = async () =>
    (await query('ALERTS{alertname="EdupulseBackupTooOld",alertstate="firing"}')).map((a) => a.metric);
  const age = Number(
    (await query('time() - edupulse_backup_last_success_timestamp_seconds{kind="physical"}'))[0]!.value[1],
  );
  // The backup finished seconds before Prometheus started: well inside the threshold.
  assert.ok(age < STALE_SECONDS, `the backup is ${age.toFixed(1)} s old when first looked at`);
  assert.equal(await firing(), [], `not firing at ${age.toFixed(1)} s`);
  const alerts = await until(
    'the alert to fire',
    async () => ((await firing()).length ? await firing() : undefined),
    90,
  );
  assert.equal(
    alerts.map((a) => [a.alertname, a.severity, a.kind, a.job]),
    [['EdupulseBackupTooOld', 'warning', 'physical', 'edupulse']],
  );
  const now = Number(
    (await query('time() - edupulse_backup_last_success_timestamp_seconds{kind="physical"}'))[0]!.value[1],
  );
  assert.ok(now > STALE_SECONDS, `fired at ${now.toFixed(1)} s, past the ${STALE_SECONDS} s threshold`);
});

test.run();
