// diagnose against a real server with a lock tree and a redundant index; the schedule's output and its in-process runner.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { defaultSettings } from '../infra/settings.ts';
import { withClient } from '../ops-scripts/lib/db.ts';
import { crontab, onCalendar, runScheduler, scheduledJobs, systemdUnits } from '../ops-scripts/lib/maintenance/schedule.ts';
import { runJob } from './cli.ts';
import { logged, startTestStack, type TestStack } from './harness.ts';

let stack: TestStack;
test.before(logged(async () => { stack = await startTestStack(); }));
test.after(async () => { await stack?.stop(); });

test('diagnose names the root of a lock wait tree, a redundant index, and suggests actions', async () => {
  await withClient(stack.pg, (c) => c.query('CREATE INDEX redundant_grades_student ON grades (student_id)'));
  const root = new pg.Client(stack.pg);
  const waiter = new pg.Client(stack.pg);
  await root.connect(); await waiter.connect();
  try {
    await root.query("SET application_name = 'forgotten-session'");
    await root.query('BEGIN');
    await root.query('LOCK TABLE grades IN ACCESS EXCLUSIVE MODE');
    const rootPid = (await root.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    const waiting = waiter.query('SELECT count(*) FROM grades').catch(() => {});
    await new Promise((r) => setTimeout(r, 300));
    const r = await runJob('diagnose', ['--json'], stack.env);
    assert.is(r.code, 0, r.stderr);
    const findings = JSON.parse(r.stdout).findings as Array<{ section: string; object: string; detail: string; suggestion: string }>;
    const lock = findings.find((f) => f.section === 'lock waits')!;
    assert.ok(lock, JSON.stringify(findings.map((f) => f.section)));
    assert.match(lock.object, new RegExp(`pid ${rootPid} \\(forgotten-session, idle in transaction\\)`));
    assert.match(lock.detail, /waits .*SELECT count\(\*\) FROM grades/);
    assert.match(lock.suggestion, new RegExp(`pg_terminate_backend\\(${rootPid}\\)`));
    const dup = findings.find((f) => f.section === 'duplicate indexes' && f.object === 'public.redundant_grades_student')!;
    assert.ok(dup);
    assert.match(dup.detail, /idx_grades_student_course/);
    assert.match(dup.suggestion, /DROP INDEX CONCURRENTLY public.redundant_grades_student/);
    assert.ok(findings.some((f) => f.section === 'unused indexes' && f.object === 'public.redundant_grades_student'));
    await root.query('ROLLBACK');
    await waiting;
  } finally {
    await root.end(); await waiter.end();
  }
});

test('the schedule prints a crontab line and a systemd timer per job, at the settings\' times', () => {
  const jobs = scheduledJobs(defaultSettings.maintenance.schedule);
  const tab = crontab(jobs, { node: '/usr/bin/node', bin: '/opt/edupulse-db/bin/edupulse-db.js', env: { EDUPULSE_STATE_DIR: '/var/lib/edupulse' }, logDir: '/var/lib/edupulse/logs' });
  assert.match(tab, /^EDUPULSE_STATE_DIR=\/var\/lib\/edupulse$/m);
  assert.match(tab, /^15 1 \* \* \* \/usr\/bin\/node \/opt\/edupulse-db\/bin\/edupulse-db.js backup --type physical >> \/var\/lib\/edupulse\/logs\/backup-physical.log 2>&1/m);
  assert.match(tab, /^0 5 \* \* 0 .* drill >> /m);
  assert.is(tab.split('\n').filter((l) => /^[\d*]/.test(l)).length, 5);
  assert.is(onCalendar('15 1 * * *'), '*-*-* 01:15:00');
  assert.is(onCalendar('0 5 * * 0'), 'Sun *-*-* 05:00:00');
  const units = systemdUnits(jobs, { node: '/usr/bin/node', bin: '/b', env: {}, logDir: '/l' });
  assert.is(units.match(/\[Timer\]/g)!.length, 5);
});

test('the in-process scheduler runs a job on its timetable and refuses to overlap it', async () => {
  const events: Array<{ job: string; refused?: string; ok?: boolean }> = [];
  let running = 0, maxRunning = 0;
  const scheduler = runScheduler([{
    name: 'slow', cron: '* * * * * *',
    run: async () => { running++; maxRunning = Math.max(maxRunning, running); await new Promise((r) => setTimeout(r, 2200)); running--; return { ok: true, detail: 'slept' }; },
  }], (e) => events.push(e as { job: string }));
  await new Promise((r) => setTimeout(r, 5000));
  scheduler.stop();
  await new Promise((r) => setTimeout(r, 2500));
  assert.ok(events.filter((e) => e.ok).length >= 1, JSON.stringify(events));
  assert.ok(events.filter((e) => e.refused).length >= 1, 'a run that came due while the previous one was going was refused');
  assert.is(maxRunning, 1, 'never two at once');
});

test.run();
