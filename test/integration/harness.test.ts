import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withClient } from '../../ops-scripts/lib/db.ts';
import { redisPing } from '../../ops-scripts/lib/redis.ts';
import { run } from '../../ops-scripts/lib/run.ts';
import { PROJECT_ROOT } from '../../ops-scripts/lib/state.ts';
import { startTestStack } from '../harness.ts';

/** Processes whose command line mentions `needle` (our servers carry their data dir or port). */
function processesMentioning(needle: string): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
        return cmd.includes(needle) ? [cmd] : [];
      } catch {
        return [];
      }
    });
}

test('a test stack serves Postgres and Redis on free ports and is gone after stop', async () => {
  const stack = await startTestStack({ redis: true });
  const root = stack.ctx.paths.root;
  await withClient(stack.pg, async (c) => {
    assert.is((await c.query('SELECT current_database() AS db')).rows[0].db, 'edupulse');
  });
  assert.ok(await redisPing({ port: stack.ctx.settings.redis.port, password: stack.secrets.redis.password }));
  await stack.stop();
  assert.not.ok(existsSync(root));
  assert.equal(processesMentioning(root), []);
  assert.equal(processesMentioning(`redis-server 127.0.0.1:${stack.ctx.settings.redis.port}`), []);
  assert.not.ok(await redisPing({ port: stack.ctx.settings.redis.port, password: stack.secrets.redis.password }));
});

for (const [how, env] of [
  ['a test fails', {}],
  ['the process exits early', { HARNESS_EXIT_EARLY: '1' }],
] as const) {
  test(`servers are stopped and removed when ${how}`, async () => {
    const r = await run(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'test/fixtures/harness-failing.ts')], {
      nothrow: true,
      env: { NO_COLOR: '1', ...env },
    });
    assert.is.not(r.code, 0);
    const root = /STATE_DIR=(\S+)/.exec(r.stdout)?.[1];
    assert.ok(root, r.stdout + r.stderr);
    assert.not.ok(existsSync(root!));
    assert.equal(processesMentioning(root!), []);
    const redisPort = /REDIS_PORT=(\d+)/.exec(r.stdout)![1];
    assert.equal(processesMentioning(`redis-server 127.0.0.1:${redisPort}`), []);
  });
}

test.run();
