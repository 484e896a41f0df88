// A bad stack configuration value fails naming the key.
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../ops-scripts/lib/run.ts';
import { PROJECT_ROOT } from '../../ops-scripts/lib/state.ts';

const load = (config: Record<string, string>) =>
  run(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'test/fixtures/pulumi-load.ts')], {
    env: { PULUMI_TEST_CONFIG: JSON.stringify(config) },
    nothrow: true,
  });

test('a valid configuration loads', async () => {
  const r = await load({ 'edupulse:postgresPort': '55432' });
  assert.match(r.stdout, /LOADED/, r.stdout + r.stderr);
});

for (const [key, value, message] of [
  ['postgresPort', '70000', /70000 is out of range; use a value from 1 to 65535/],
  ['mode', 'kubernetes', /unknown value "kubernetes"; use one of docker, existing/],
  ['redisMaxmemory', 'plenty', /not a size/],
  ['repoDir', 'relative/path', /not an absolute host path/],
  ['archiveTimeoutSeconds', '-1', /-1 is out of range; use a value from 0 to 86400/],
  ['bindAddress', 'everywhere', /not an IPv4 address/],
] as const) {
  test(`edupulse:${key}=${value} fails naming the key`, async () => {
    const r = await load({ [`edupulse:${key}`]: value });
    assert.is(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stdout, `edupulse:${key}`);
    assert.match(r.stdout, message);
  });
}

test('encryption at rest with the official image (no age in it) fails naming the image key; with an image of our own it loads', async () => {
  const recipient = 'age1sz89wagum859rus0crtst3jnpdsvvcdzuy7c6sax0hs83uh6us3q80tchh';
  const official = await load({ 'edupulse:backupAgeRecipients': recipient });
  assert.is(official.code, 2, official.stdout + official.stderr);
  assert.match(official.stdout, /edupulse:postgresImage/);
  assert.match(official.stdout, /has no age/);
  const own = await load({
    'edupulse:backupAgeRecipients': recipient,
    'edupulse:postgresImage': 'registry.example.com/edupulse/postgres-age:17',
  });
  assert.match(own.stdout, /LOADED/, own.stdout + own.stderr);
  const bad = await load({ 'edupulse:backupAgeRecipients': 'not-a-key' });
  assert.match(bad.stdout, /edupulse:backupAgeRecipients/);
  assert.match(bad.stdout, /age public key/);
});

test('an existing server without a host fails naming the key', async () => {
  const r = await load({ 'edupulse:mode': 'existing', 'edupulse:postgresPassword': 'x' });
  assert.match(r.stdout, /edupulse:postgresHost: is required/);
});

test.run();
