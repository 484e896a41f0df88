// A page with a bad checksum does not cost the night's backup: the job still
// produces a complete backup (verified against its manifest, restorable),
// names each failure (file, block, relation) in backup.json, exits 1, reports
// the run as failed in its metrics, and health goes critical naming the table.
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withClient } from '../../ops-scripts/lib/db.ts';
import { runJob } from '../cli.ts';
import { logged, startTestStack, type TestStack } from '../harness.ts';

let stack: TestStack;
let file: string;

test.before(
  logged(async () => {
    stack = await startTestStack();
    const path = await withClient(stack.pg, async (c) => {
      await c.query(
        "CREATE TABLE victim (id int, t text); INSERT INTO victim SELECT g, repeat('x', 100) FROM generate_series(1, 1000) g",
      );
      await c.query('CHECKPOINT');
      return (await c.query("SELECT pg_relation_filepath('victim') AS p")).rows[0].p as string;
    });
    file = path;
    // Bytes in the middle of block 0, on disk (the server flushed it and will not write it again): its checksum fails.
    const fd = openSync(join(stack.ctx.paths.dataDir, path), 'r+');
    writeSync(fd, Buffer.from('garbage!garbage!'), 0, 16, 4000);
    closeSync(fd);
  }),
);

test.after(async () => {
  await stack?.stop();
});

test('the backup is complete and listed, the damaged page named, the job exits 1, metrics and health report it', async () => {
  const r = await runJob('backup', ['--type', 'physical', '--json'], stack.env);
  assert.is(r.code, 1, r.stderr);
  const { record } = JSON.parse(r.stdout);
  assert.is(record.status, 'complete');
  assert.equal(record.checksumFailures, [{ file, block: 0, relation: 'victim' }]);
  const stored = JSON.parse(readFileSync(join(stack.ctx.paths.repoDir, 'base', record.id, 'backup.json'), 'utf8'));
  assert.equal(stored.checksumFailures, record.checksumFailures, 'recorded in backup.json');
  const listed = JSON.parse((await runJob('backup:list', ['--json'], stack.env)).stdout);
  assert.ok(
    listed.backups.some((b: { id: string }) => b.id === record.id),
    'listed as a backup',
  );
  const metrics = readFileSync(join(stack.ctx.paths.metricsDir, 'edupulse_backup_physical.prom'), 'utf8');
  assert.match(metrics, /^edupulse_backup_last_run_success\{kind="physical"\} 0$/m, 'the run alerts');
  assert.match(metrics, /^edupulse_backups_complete\{kind="physical"\} 1$/m, 'and the backup counts');
  const health = JSON.parse((await runJob('health', ['--json'], stack.env)).stdout);
  const check = health.checks.find((c: { name: string }) => c.name === 'page_checksum_failures');
  assert.is(check.level, 'critical');
  assert.match(check.detail, /victim block 0/);
  const text = await runJob('backup', ['--type', 'physical'], stack.env);
  assert.is(text.code, 1);
  assert.match(text.stdout, /PAGE CHECKSUM FAILURES[^]*victim: base\/\d+\/\d+ block 0/);
});

test('the backup is restorable: a drill restores and promotes it', async () => {
  const r = await runJob('drill', ['--json'], stack.env);
  const report = JSON.parse(r.stdout);
  const restore = report.checks.find((c: { name: string }) => c.name === 'restore and promote');
  assert.is(restore?.status, 'passed', JSON.stringify(report.checks, null, 1));
});

test.run();
