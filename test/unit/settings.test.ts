import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  defaultSettings,
  KNOWN_VARIABLES,
  loadSettings,
  postgresParameters,
  redisDirectives,
  SettingsError,
} from '../../infra/settings.ts';
import { PROJECT_ROOT } from '../../ops-scripts/lib/state.ts';

test('defaults need no environment and use non-standard ports', () => {
  const s = loadSettings({});
  assert.equal(s, defaultSettings);
  assert.is.not(s.postgres.port, 5432);
  assert.is.not(s.redis.port, 6379);
});

test('EDUPULSE_ variables override the defaults', () => {
  const s = loadSettings({
    EDUPULSE_PG_PORT: '6000',
    EDUPULSE_PG_ARCHIVE_TIMEOUT: '30',
    EDUPULSE_REDIS_EVICTION_POLICY: 'volatile-ttl',
    EDUPULSE_REDIS_MAXMEMORY: '64mb',
    EDUPULSE_REDIS_PERSISTENCE: 'aof',
  });
  assert.is(s.postgres.port, 6000);
  assert.is(s.postgres.archiveTimeoutSeconds, 30);
  assert.is(s.redis.maxmemoryPolicy, 'volatile-ttl');
  assert.is(s.redis.maxmemory, '64mb');
  assert.is(s.redis.persistence, 'aof');
});

const rejects = (env: Record<string, string>, variable: string, pattern: RegExp) => {
  try {
    loadSettings(env);
  } catch (err) {
    assert.instance(err, SettingsError);
    assert.is((err as SettingsError).variable, variable);
    assert.match((err as Error).message, variable);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`${variable} should be rejected`);
};

test('invalid values are rejected naming the variable', () => {
  rejects({ EDUPULSE_PG_PORT: '70000' }, 'EDUPULSE_PG_PORT', /out of range/);
  rejects({ EDUPULSE_PG_PORT: 'abc' }, 'EDUPULSE_PG_PORT', /not a whole number/);
  rejects({ EDUPULSE_PG_ARCHIVE_TIMEOUT: '-5' }, 'EDUPULSE_PG_ARCHIVE_TIMEOUT', /out of range/);
  rejects({ EDUPULSE_REDIS_EVICTION_POLICY: 'random-ish' }, 'EDUPULSE_REDIS_EVICTION_POLICY', /allkeys-lru/);
  rejects({ EDUPULSE_REDIS_PERSISTENCE: 'sometimes' }, 'EDUPULSE_REDIS_PERSISTENCE', /none, rdb, aof/);
  rejects({ EDUPULSE_REDIS_MAXMEMORY: 'lots' }, 'EDUPULSE_REDIS_MAXMEMORY', /size/);
  rejects({ EDUPULSE_MIGRATE_LOCK_TIMEOUT: '5' }, 'EDUPULSE_MIGRATE_LOCK_TIMEOUT', /with its unit/);
  rejects({ EDUPULSE_MIGRATE_LOCK_TIMEOUT: '0ms' }, 'EDUPULSE_MIGRATE_LOCK_TIMEOUT', /turn the timeout off/);
});

test('paths, programs, the service user and the object store are parsed with the rest, once', () => {
  const s = loadSettings({
    EDUPULSE_STATE_DIR: '/srv/edupulse',
    EDUPULSE_PG_BINDIR: '/usr/lib/postgresql/15/bin',
    EDUPULSE_SERVICE_USER: 'edupulse',
    EDUPULSE_REPO_MODE: 'copy',
    EDUPULSE_S3_BUCKET: 'backups-1',
    EDUPULSE_S3_PREFIX: '/district/a',
    EDUPULSE_S3_ENDPOINT: 'http://127.0.0.1:9000',
  });
  assert.equal(s.host, { stateDir: '/srv/edupulse', pgBinDir: '/usr/lib/postgresql/15/bin', serviceUser: 'edupulse' });
  assert.equal(s.backup.store, {
    endpoint: 'http://127.0.0.1:9000',
    region: 'us-east-1',
    bucket: 'backups-1',
    prefix: 'district/a/',
  });
  assert.is(loadSettings({ EDUPULSE_S3_BUCKET: 'ignored-when-local' }).backup.store, undefined);
  rejects({ EDUPULSE_REPO_MODE: 'remote' }, 'EDUPULSE_S3_BUCKET', /required when EDUPULSE_REPO_MODE=remote/);
  rejects({ EDUPULSE_REPO_MODE: 'copy', EDUPULSE_S3_BUCKET: 'Bad_Bucket' }, 'EDUPULSE_S3_BUCKET', /bucket name/);
  rejects(
    { EDUPULSE_REPO_MODE: 'copy', EDUPULSE_S3_BUCKET: 'ok-bucket', EDUPULSE_S3_ENDPOINT: 'minio:9000' },
    'EDUPULSE_S3_ENDPOINT',
    /URL/,
  );
  rejects({ EDUPULSE_SERVICE_USER: 'root; rm' }, 'EDUPULSE_SERVICE_USER', /OS user name/);
});

test('postgres parameters archive through the zstd script into the repository', () => {
  const p = postgresParameters(defaultSettings.postgres, {
    walArchiveDir: '/repo/wal',
    archiveScript: '/state/pg/archive-wal.sh',
  });
  assert.is(p.wal_level, 'replica');
  assert.is(p.archive_mode, 'on');
  assert.is(p.archive_library, undefined);
  assert.is(p.archive_command, "'/state/pg/archive-wal.sh' %p %f '/repo/wal' 1");
  assert.is(p.archive_timeout, '60s');
  assert.is(p.log_min_duration_statement, '1000ms');
  assert.is(p.log_lock_waits, 'on');
  assert.is(p.wal_compression, 'zstd');
  assert.is(p.constraint_exclusion, 'on');
  assert.is(p.shared_preload_libraries, 'pg_stat_statements');
  assert.is(p.password_encryption, 'scram-sha-256');
  const level = loadSettings({ EDUPULSE_PG_ARCHIVE_ZSTD_LEVEL: '6' }).postgres;
  assert.match(postgresParameters(level, { walArchiveDir: '/w', archiveScript: '/s' }).archive_command!, / 6$/);
  rejects({ EDUPULSE_PG_ARCHIVE_ZSTD_LEVEL: '30' }, 'EDUPULSE_PG_ARCHIVE_ZSTD_LEVEL', /1/);
});

test('redis directives carry memory limit, eviction policy and persistence', () => {
  const d = new Map(redisDirectives({ ...defaultSettings.redis, persistence: 'aof' }));
  assert.is(d.get('maxmemory'), '256mb');
  assert.is(d.get('maxmemory-policy'), 'allkeys-lru');
  assert.is(d.get('appendonly'), 'yes');
  assert.is(new Map(redisDirectives({ ...defaultSettings.redis, persistence: 'none' })).get('save'), '');
});

test('an unknown EDUPULSE_ variable is reported with the nearest known name, not ignored', () => {
  rejects({ EDUPULSE_PG_PORTT: '55000' }, 'EDUPULSE_PG_PORTT', /no such setting; did you mean EDUPULSE_PG_PORT\?/);
  rejects({ EDUPULSE_WHATEVER_ELSE: '1' }, 'EDUPULSE_WHATEVER_ELSE', /no such setting \(the settings/);
  // The README documents exactly the variables the toolkit reads.
  const readme = new Set(readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8').match(/EDUPULSE_[A-Z0-9_]*[A-Z0-9]/g));
  readme.delete('EDUPULSE_PG_PORTT');
  assert.equal([...readme].sort(), [...KNOWN_VARIABLES].sort());
  assert.is(loadSettings({ EDUPULSE_MIGRATE_LOCK_TIMEOUT: '750ms' }).migrations.lockTimeout, '750ms');
  rejects({ EDUPULSE_MIGRATE_LOCK_TIMEOUT: 'banana' }, 'EDUPULSE_MIGRATE_LOCK_TIMEOUT', /not a duration/);
});

test.run();
