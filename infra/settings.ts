// The desired server settings: the one place they are written. Pure data and
// pure functions (the environment is passed in), imported by the local stack
// and by the Pulumi program alike.

import { archiveCommand } from './wal-archive.ts';

export const ENV_PREFIX = 'EDUPULSE_';

export type EvictionPolicy =
  | 'allkeys-lru'
  | 'allkeys-lfu'
  | 'allkeys-random'
  | 'volatile-lru'
  | 'volatile-lfu'
  | 'volatile-random'
  | 'volatile-ttl'
  | 'noeviction';
export const EVICTION_POLICIES: readonly EvictionPolicy[] = [
  'allkeys-lru',
  'allkeys-lfu',
  'allkeys-random',
  'volatile-lru',
  'volatile-lfu',
  'volatile-random',
  'volatile-ttl',
  'noeviction',
];

export type RedisPersistence = 'none' | 'rdb' | 'aof';
export const REDIS_PERSISTENCE: readonly RedisPersistence[] = ['none', 'rdb', 'aof'];

export interface PostgresSettings {
  /** Oldest major version the toolkit supports; the newest installed major is used. */
  minMajorVersion: number;
  /** Container image tag for the Pulumi program. */
  imageTag: string;
  port: number;
  database: string;
  archiveTimeoutSeconds: number;
  /** zstd level of archived WAL segments (1 = fastest; see infra/wal-archive.ts). */
  archiveZstdLevel: number;
  /** Hot standbys streaming from the primary (local stack: ports port+1..port+N). 0: one server. */
  standbys: number;
  /**
   * async: a commit returns once the primary has it (a failover can lose the last moments, reported by the
   * failover drill); sync: once a standby has flushed it too (synchronous_standby_names = ANY 1 (...)),
   * so a failover loses no acknowledged commit. Needs at least one standby.
   */
  replication: ReplicationMode;
  logMinDurationMs: number;
  dataChecksums: boolean;
}

export const REPLICATION_MODES = ['async', 'sync'] as const;
export type ReplicationMode = (typeof REPLICATION_MODES)[number];

export const POOL_MODES = ['transaction', 'session', 'statement'] as const;
export type PoolMode = (typeof POOL_MODES)[number];

/**
 * PgBouncer in front of the primary (and, with standbys, a second database entry for reporting reads on a standby).
 *
 * Sizing, from the documented application (reference: pool_size=20, max_overflow=40 per process) and
 * PostgreSQL's max_connections (100, the server default, which we keep):
 * - clients: each application process may open 20 + 40 = 60 connections; four processes (one per core of
 *   an app host) is 240, so max_client_conn = 300 leaves headroom for ops jobs and reporting.
 * - server: the declared ops logins may hold 5+5+5+10 = 25 (migrator, backup, monitor, reporting) plus
 *   superuser_reserved_connections 3 (walsenders count apart since PostgreSQL 12), leaving 72 of 100;
 *   max_db_connections = 60 stays under that with room for a direct admin session. In transaction mode one
 *   server connection serves many clients' short transactions: default_pool_size = 20 per (database, user)
 *   (the application's steady pool) with reserve_pool_size = 10 more for bursts (its overflow, server side).
 */
export interface PoolerSettings {
  enabled: boolean;
  port: number;
  poolMode: PoolMode;
  defaultPoolSize: number;
  reservePoolSize: number;
  maxClientConn: number;
  maxDbConnections: number;
}

export interface RedisSettings {
  port: number;
  maxmemory: string;
  maxmemoryPolicy: EvictionPolicy;
  persistence: RedisPersistence;
  /** The prediction cache: key prefix and time to live. */
  cacheKeyPrefix: string;
  cacheTtlSeconds: number;
}

export type BackupCompression =
  | 'server-zstd:level=1,workers=2'
  | 'server-zstd:1'
  | 'server-zstd'
  | 'server-lz4'
  | 'client-gzip:1'
  | 'client-gzip'
  | 'client-lz4'
  | 'none';
export const BACKUP_COMPRESSIONS: readonly BackupCompression[] = [
  'server-zstd:level=1,workers=2',
  'server-zstd:1',
  'server-zstd',
  'server-lz4',
  'client-gzip:1',
  'client-gzip',
  'client-lz4',
  'none',
];

export const REPO_MODES = ['local', 'copy', 'remote'] as const;
export type RepoMode = (typeof REPO_MODES)[number];

/** The S3-compatible object store (repoMode copy or remote); credentials come from the AWS SDK's own chain, never from here. */
export interface StoreSettings {
  endpoint?: string;
  region: string;
  bucket: string;
  /** Key prefix, '' or ending in '/'. */
  prefix: string;
}

export interface BackupSettings {
  /** Where backups live: the local repository only, also a copy in the object store, or the store only. */
  repoMode: RepoMode;
  /** The object store, when repoMode is not local. */
  store?: StoreSettings;
  /** Physical base backups kept by retention (at least 1). */
  keepPhysical: number;
  /** Logical dumps kept by retention (at least 1). */
  keepLogical: number;
  compression: BackupCompression;
  checkpoint: 'fast' | 'spread';
  /** Physical backups are read from a standby (the first streaming one) to keep the load off the primary. */
  fromStandby: boolean;
  /** A restore from the object store fetches WAL ahead of replay into a spool of at most this many MB. */
  walPrefetchMb: number;
  /**
   * Encryption at rest with age (off when no recipients): base backups, dumps and archived WAL are
   * encrypted to these public keys where they are written, so the database host needs only them;
   * the identity (private key) file is needed only to restore, drill or verify deeply, and need not
   * live on the database host at all.
   */
  encryption: { recipients: string[]; identityFile?: string };
}

export interface HealthThresholds {
  /** [warn, critical] for each check. */
  selectLatencyMs: [number, number];
  connectionsUsedPct: [number, number];
  longestTransactionSeconds: [number, number];
  blockedQueries: [number, number];
  physicalBackupAgeHours: [number, number];
  logicalBackupAgeHours: [number, number];
  drillAgeDays: [number, number];
  /** Share of autovacuum_freeze_max_age used by the oldest database. */
  xidAgePct: [number, number];
  /** WAL segments done but not yet archived (.ready in pg_wal/archive_status): the archiver lagging or stuck. */
  archiveReadySegments: [number, number];
  /** Bytes a standby's replay is behind the primary's WAL (a standby not streaming at all is critical). */
  replicationLagBytes: [number, number];
  /** Clients PgBouncer holds waiting for a server connection (pools exhausted: the documented "QueuePool limit"). */
  poolerWaitingClients: [number, number];
  redisPingMs: [number, number];
  redisMemoryUsedPct: [number, number];
  latestPredictionsMs: [number, number];
  /** student_attendance_concerns as the reporting login reads it: slow when the attendance window stopped moving. */
  attendanceConcernsMs: [number, number];
}

export interface MaintenanceSettings {
  /** VACUUM FULL above this size needs --force. */
  vacuumFullMaxMb: number;
  /** Cron timetable of the scheduled jobs. */
  schedule: {
    physicalBackup: string;
    logicalBackup: string;
    vacuum: string;
    drill: string;
    health: string;
    report: string;
  };
  health: HealthThresholds;
}

export interface MigrationSettings {
  /** lock_timeout of migration runs: one stuck behind a busy table fails fast instead of queueing every writer. */
  lockTimeout: string;
}

/** Where the ops layer keeps things on this host and which programs it runs. */
export interface HostSettings {
  /** The state directory; unset means .edupulse in the checkout (the ops layer knows where that is). */
  stateDir?: string;
  /** The backup repository; unset means repo/ in the state directory. */
  repoDir?: string;
  /** The Prometheus textfile directory; unset means metrics/ in the state directory. */
  metricsDir?: string;
  /** PostgreSQL's bin directory; unset means the newest installed one. */
  pgBinDir?: string;
  /** The redis-server program; unset means the one on PATH. */
  redisServer?: string;
  /** The unprivileged OS user the servers run as when the toolkit runs as root. */
  serviceUser: string;
}

export interface Settings {
  host: HostSettings;
  postgres: PostgresSettings;
  pooler: PoolerSettings;
  migrations: MigrationSettings;
  redis: RedisSettings;
  backup: BackupSettings;
  maintenance: MaintenanceSettings;
}

/** The ports the servers listen on inside their containers (the images' own); published ports are config. */
export const CONTAINER_PORTS = { postgres: 5432, redis: 6379 } as const;

export const defaultSettings: Settings = {
  host: { serviceUser: 'postgres' },
  postgres: {
    minMajorVersion: 15,
    imageTag: 'postgres:17',
    // Not the standard ports, so the local stack never collides with a server already here.
    port: 54329,
    database: 'edupulse',
    archiveTimeoutSeconds: 60,
    // Measured (BENCHMARKS.md, "WAL archive"): level 1 stores a 16 MB segment in ~4 MB at ~300 MB/s.
    archiveZstdLevel: 1,
    standbys: 0,
    replication: 'async',
    logMinDurationMs: 1000,
    dataChecksums: true,
  },
  pooler: {
    enabled: false,
    // Beside the other local ports (PgBouncer's own default is 6432).
    port: 64329,
    poolMode: 'transaction',
    defaultPoolSize: 20,
    reservePoolSize: 10,
    maxClientConn: 300,
    maxDbConnections: 60,
  },
  migrations: { lockTimeout: '5s' },
  redis: {
    port: 63799,
    maxmemory: '256mb',
    // A cache: any key may go when memory is full, least recently used first.
    maxmemoryPolicy: 'allkeys-lru',
    persistence: 'rdb',
    cacheKeyPrefix: 'prediction:',
    cacheTtlSeconds: 3600,
  },
  backup: {
    repoMode: 'local',
    keepPhysical: 7,
    keepLogical: 14,
    // Measured (BENCHMARKS.md): server-side zstd level 1 is the fastest with a good ratio; two compression
    // threads on the server cut a 1.5 GB backup from 7.5-8.8 s to 6.2-6.8 s here (bench:pgbackrest).
    compression: 'server-zstd:level=1,workers=2',
    walPrefetchMb: 256,
    encryption: { recipients: [] },
    checkpoint: 'fast',
    fromStandby: false,
  },
  maintenance: {
    vacuumFullMaxMb: 1024,
    schedule: {
      physicalBackup: '15 1 * * *',
      logicalBackup: '45 2 * * *',
      vacuum: '30 3 * * *',
      drill: '0 5 * * 0',
      health: '7 * * * *',
      // After the night's backups, the Sunday drill and a health result: the page shows them.
      report: '20 6 * * *',
    },
    health: {
      selectLatencyMs: [50, 1000],
      connectionsUsedPct: [80, 95],
      longestTransactionSeconds: [300, 3600],
      blockedQueries: [1, 10],
      physicalBackupAgeHours: [26, 50],
      logicalBackupAgeHours: [26, 50],
      drillAgeDays: [8, 15],
      xidAgePct: [50, 90],
      // 16 MB each: a handful is a burst, dozens is an archiver that cannot keep up (or fails) and WAL piling up.
      archiveReadySegments: [8, 64],
      // A segment behind is a burst being replayed; sixteen is a standby that cannot keep up (or a failover that would lose time).
      replicationLagBytes: [16 * 1024 * 1024, 256 * 1024 * 1024],
      // A few waiting is a burst the reserve pool absorbs; a hundred is a pool too small or connections held idle in transaction.
      poolerWaitingClients: [10, 100],
      redisPingMs: [20, 500],
      redisMemoryUsedPct: [90, 98],
      latestPredictionsMs: [50, 500],
      // The target is 100 ms at 200k students (22 ms measured); a window left days behind reads more each day.
      attendanceConcernsMs: [100, 1000],
    },
  },
};

/** A setting that cannot be loaded: names the variable, says what is allowed. */
export class SettingsError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'SettingsError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Pure checks of one raw value, shared by the environment (EDUPULSE_*) and the
 * Pulumi stack config: each returns the value or throws a message saying what
 * is allowed; the caller names the variable or key.
 */
export const check = {
  int(raw: string, min: number, max: number): number {
    if (!/^-?\d+$/.test(raw.trim())) throw new Error(`"${raw}" is not a whole number`);
    const value = Number(raw);
    if (value < min || value > max) throw new Error(`${value} is out of range; use a value from ${min} to ${max}`);
    return value;
  },
  oneOf<T extends string>(raw: string, allowed: readonly T[]): T {
    if (!(allowed as readonly string[]).includes(raw))
      throw new Error(`unknown value "${raw}"; use one of ${allowed.join(', ')}`);
    return raw as T;
  },
  match(raw: string, pattern: RegExp, what: string): string {
    if (!pattern.test(raw)) throw new Error(`"${raw}" is not ${what}`);
    return raw;
  },
  /**
   * A PostgreSQL timeout (lock_timeout, statement_timeout) with its unit. A bare
   * number would be milliseconds to the server and 0 turns the timeout off, so
   * both are refused; so is anything past the server's limit (2147483647 ms).
   */
  timeout(raw: string): string {
    const m = /^(\d+)(ms|s|min|h)$/.exec(raw);
    if (!m) throw new Error(`"${raw}" is not a duration with its unit, such as 5s, 500ms, 2min or 1h`);
    const ms = Number(m[1]) * { ms: 1, s: 1000, min: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'min' | 'h'];
    if (ms < 1) throw new Error(`"${raw}" would turn the timeout off; give at least 1ms`);
    if (ms > 2_147_483_647) throw new Error(`"${raw}" is past PostgreSQL's limit of 2147483647ms (about 24 days)`);
    return raw;
  },
};

/** The shapes of values, each written once. */
export const PATTERNS = {
  image: [/^[\w.\/-]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$/, 'an image reference such as postgres:17'],
  size: [/^\d+(kb|mb|gb)?$/i, 'a size such as 256mb'],
  database: [/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case database name'],
  ageRecipient: [/^age1[02-9ac-hj-np-z]{58}$/, 'an age public key (age1..., from age-keygen -y)'],
  absolutePath: [/^\/[^\0'"\n]*$/, 'an absolute path'],
} as const satisfies Record<string, readonly [RegExp, string]>;

function fromEnv<T>(env: Env, name: string, fallback: T, parse: (raw: string) => T): T {
  const variable = ENV_PREFIX + name;
  const raw = env[variable];
  if (raw === undefined || raw === '') return fallback;
  try {
    return parse(raw);
  } catch (err) {
    throw new SettingsError(variable, (err as Error).message);
  }
}

const intIn = (env: Env, name: string, fallback: number, min: number, max: number) =>
  fromEnv(env, name, fallback, (r) => check.int(r, min, max));
const oneOf = <T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]) =>
  fromEnv(env, name, fallback, (r) => check.oneOf(r, allowed));
const matching = (env: Env, name: string, fallback: string, pattern: RegExp, what: string) =>
  fromEnv(env, name, fallback, (r) => check.match(r, pattern, what));
const optionalPath = (env: Env, name: string): { identityFile?: string } => {
  const path = fromEnv<string | undefined>(env, name, undefined, (r) => check.match(r, ...PATTERNS.absolutePath));
  return path ? { identityFile: path } : {};
};
const shaped = (env: Env, name: string, fallback: string, [pattern, what]: readonly [RegExp, string]) =>
  matching(env, name, fallback, pattern, what);

const optional = (env: Env, name: string): string | undefined => env[ENV_PREFIX + name] || undefined;

function storeSettings(env: Env, mode: RepoMode): StoreSettings | undefined {
  if (mode === 'local') return undefined;
  const bucket = optional(env, 'S3_BUCKET');
  if (!bucket) throw new SettingsError(`${ENV_PREFIX}S3_BUCKET`, `is required when ${ENV_PREFIX}REPO_MODE=${mode}`);
  matching(
    env,
    'S3_BUCKET',
    '',
    /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
    'a bucket name (3-63 lower-case letters, digits, dots, dashes)',
  );
  const prefix = (env[`${ENV_PREFIX}S3_PREFIX`] ?? 'edupulse/').replace(/^\/+/, '');
  const endpoint = optional(env, 'S3_ENDPOINT');
  if (endpoint && !/^https?:\/\/[^\s/]+/.test(endpoint))
    throw new SettingsError(`${ENV_PREFIX}S3_ENDPOINT`, `"${endpoint}" is not an http(s) URL`);
  return {
    ...(endpoint ? { endpoint } : {}),
    region: optional(env, 'S3_REGION') ?? 'us-east-1',
    bucket,
    prefix: prefix && !prefix.endsWith('/') ? `${prefix}/` : prefix,
  };
}

/** Every EDUPULSE_* variable the toolkit reads: the settings here, and the paths, binaries and store the ops layer reads. */
export const KNOWN_VARIABLES = [
  'PG_IMAGE',
  'PG_PORT',
  'PG_DATABASE',
  'PG_ARCHIVE_TIMEOUT',
  'PG_ARCHIVE_ZSTD_LEVEL',
  'PG_STANDBYS',
  'PG_REPLICATION',
  'POOLER',
  'POOLER_PORT',
  'POOLER_MODE',
  'POOLER_POOL_SIZE',
  'POOLER_MAX_CLIENTS',
  'WAL_PREFETCH_MB',
  'BACKUP_AGE_RECIPIENTS',
  'BACKUP_AGE_IDENTITY',
  'PG_LOG_MIN_DURATION_MS',
  'MIGRATE_LOCK_TIMEOUT',
  'REDIS_PORT',
  'REDIS_MAXMEMORY',
  'REDIS_EVICTION_POLICY',
  'REDIS_PERSISTENCE',
  'BACKUP_KEEP_PHYSICAL',
  'BACKUP_KEEP_LOGICAL',
  'BACKUP_COMPRESSION',
  'BACKUP_CHECKPOINT',
  'BACKUP_FROM_STANDBY',
  'VACUUM_FULL_MAX_MB',
  'STATE_DIR',
  'REPO_DIR',
  'METRICS_DIR',
  'PG_BINDIR',
  'REDIS_SERVER',
  'SERVICE_USER',
  'REPO_MODE',
  'S3_BUCKET',
  'S3_PREFIX',
  'S3_REGION',
  'S3_ENDPOINT',
].map((n) => ENV_PREFIX + n);

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** An EDUPULSE_* variable nobody reads is a typo until shown otherwise: EDUPULSE_PG_PORTT would silently leave the port at its default. */
export function checkVariables(env: Env): void {
  for (const name of Object.keys(env)
    .filter((k) => k.startsWith(ENV_PREFIX))
    .sort()) {
    if (KNOWN_VARIABLES.includes(name)) continue;
    const near = KNOWN_VARIABLES.map((k) => [k, distance(name, k)] as const).sort((x, y) => x[1] - y[1])[0]!;
    throw new SettingsError(
      name,
      `no such setting${near[1] <= 3 ? `; did you mean ${near[0]}?` : ''} (the settings are listed in the README)`,
    );
  }
}

/** The settings with the environment's overrides applied; throws SettingsError on a bad value or an unknown EDUPULSE_* variable. */
export function loadSettings(env: Env = {}): Settings {
  checkVariables(env);
  const d = defaultSettings;
  const repoMode = oneOf(env, 'REPO_MODE', d.backup.repoMode, REPO_MODES);
  const store = storeSettings(env, repoMode);
  const standbys = intIn(env, 'PG_STANDBYS', d.postgres.standbys, 0, 3);
  const replication = oneOf(env, 'PG_REPLICATION', d.postgres.replication, REPLICATION_MODES);
  if (replication === 'sync' && standbys === 0)
    throw new SettingsError(
      `${ENV_PREFIX}PG_REPLICATION`,
      'sync needs a standby to confirm commits; set EDUPULSE_PG_STANDBYS to 1 or more, or use async',
    );
  return {
    host: {
      ...Object.fromEntries(
        (
          [
            ['stateDir', 'STATE_DIR'],
            ['repoDir', 'REPO_DIR'],
            ['metricsDir', 'METRICS_DIR'],
            ['pgBinDir', 'PG_BINDIR'],
            ['redisServer', 'REDIS_SERVER'],
          ] as const
        ).flatMap(([key, name]) => (optional(env, name) ? [[key, optional(env, name)]] : [])),
      ),
      serviceUser: matching(env, 'SERVICE_USER', d.host.serviceUser, /^[a-z_][a-z0-9_-]{0,31}$/, 'an OS user name'),
    },
    postgres: {
      minMajorVersion: d.postgres.minMajorVersion,
      imageTag: shaped(env, 'PG_IMAGE', d.postgres.imageTag, PATTERNS.image),
      port: intIn(env, 'PG_PORT', d.postgres.port, 1, 65535),
      database: shaped(env, 'PG_DATABASE', d.postgres.database, PATTERNS.database),
      archiveTimeoutSeconds: intIn(env, 'PG_ARCHIVE_TIMEOUT', d.postgres.archiveTimeoutSeconds, 0, 86400),
      archiveZstdLevel: intIn(env, 'PG_ARCHIVE_ZSTD_LEVEL', d.postgres.archiveZstdLevel, 1, 19),
      standbys,
      replication,
      logMinDurationMs: intIn(env, 'PG_LOG_MIN_DURATION_MS', d.postgres.logMinDurationMs, -1, 3_600_000),
      dataChecksums: d.postgres.dataChecksums,
    },
    pooler: {
      ...d.pooler,
      enabled: oneOf(env, 'POOLER', d.pooler.enabled ? 'on' : 'off', ['on', 'off'] as const) === 'on',
      port: intIn(env, 'POOLER_PORT', d.pooler.port, 1, 65535),
      poolMode: oneOf(env, 'POOLER_MODE', d.pooler.poolMode, POOL_MODES),
      defaultPoolSize: intIn(env, 'POOLER_POOL_SIZE', d.pooler.defaultPoolSize, 1, d.pooler.maxDbConnections),
      maxClientConn: intIn(env, 'POOLER_MAX_CLIENTS', d.pooler.maxClientConn, 1, 100_000),
    },
    migrations: {
      lockTimeout: fromEnv(env, 'MIGRATE_LOCK_TIMEOUT', d.migrations.lockTimeout, check.timeout),
    },
    redis: {
      port: intIn(env, 'REDIS_PORT', d.redis.port, 1, 65535),
      maxmemory: shaped(env, 'REDIS_MAXMEMORY', d.redis.maxmemory, PATTERNS.size),
      maxmemoryPolicy: oneOf(env, 'REDIS_EVICTION_POLICY', d.redis.maxmemoryPolicy, EVICTION_POLICIES),
      persistence: oneOf(env, 'REDIS_PERSISTENCE', d.redis.persistence, REDIS_PERSISTENCE),
      cacheKeyPrefix: d.redis.cacheKeyPrefix,
      cacheTtlSeconds: d.redis.cacheTtlSeconds,
    },
    backup: {
      repoMode,
      ...(store ? { store } : {}),
      keepPhysical: intIn(env, 'BACKUP_KEEP_PHYSICAL', d.backup.keepPhysical, 1, 1000),
      keepLogical: intIn(env, 'BACKUP_KEEP_LOGICAL', d.backup.keepLogical, 1, 1000),
      compression: oneOf(env, 'BACKUP_COMPRESSION', d.backup.compression, BACKUP_COMPRESSIONS),
      checkpoint: oneOf(env, 'BACKUP_CHECKPOINT', d.backup.checkpoint, ['fast', 'spread'] as const),
      fromStandby:
        oneOf(env, 'BACKUP_FROM_STANDBY', d.backup.fromStandby ? 'on' : 'off', ['on', 'off'] as const) === 'on',
      walPrefetchMb: intIn(env, 'WAL_PREFETCH_MB', d.backup.walPrefetchMb, 16, 65536),
      encryption: {
        recipients: fromEnv(env, 'BACKUP_AGE_RECIPIENTS', d.backup.encryption.recipients, (r) =>
          r.split(',').map((k) => check.match(k.trim(), ...PATTERNS.ageRecipient)),
        ),
        ...optionalPath(env, 'BACKUP_AGE_IDENTITY'),
      },
    },
    maintenance: {
      ...d.maintenance,
      vacuumFullMaxMb: intIn(env, 'VACUUM_FULL_MAX_MB', d.maintenance.vacuumFullMaxMb, 0, 10_000_000),
    },
  };
}

/**
 * The postgresql.conf parameters, rendered once for both appliers: the local
 * stack writes them to an included file, the container gets them as -c flags.
 * WAL is archived by the script of wal-archive.ts at `archiveScript`, into `walArchiveDir`.
 */
export function postgresParameters(
  s: PostgresSettings,
  where: {
    walArchiveDir: string;
    archiveScript: string;
    /** When encryption at rest is on: the file holding the age recipients archived WAL is encrypted to. */
    ageRecipientsFile?: string;
    /** The server's major version, where known: 17+ summarizes WAL for incremental backups. */
    major?: number;
    port?: number;
    listenAddresses?: string;
  },
): Record<string, string> {
  return {
    port: String(where.port ?? s.port),
    listen_addresses: where.listenAddresses ?? '127.0.0.1',
    wal_level: 'replica',
    archive_mode: 'on',
    archive_command: archiveCommand(
      where.archiveScript,
      where.walArchiveDir,
      s.archiveZstdLevel,
      where.ageRecipientsFile,
    ),
    archive_timeout: `${s.archiveTimeoutSeconds}s`,
    // PostgreSQL 17+: WAL summaries let pg_basebackup --incremental send only changed blocks.
    ...((where.major ?? 0) >= 17 ? { summarize_wal: 'on' } : {}),
    // Full-page images: zstd measured fewer WAL bytes and less time than 'on' (pglz) here (BENCHMARKS.md, "WAL archive").
    wal_compression: 'zstd',
    // student_risk_summary is latest_high UNION ALL the other rows of latest_predictions (a branch with a WHERE):
    // PostgreSQL cannot flatten such a branch into an appendrel, so only 'on' (not the default 'partition') lets
    // the planner see that a high/critical filter contradicts that branch's and skip it (BENCHMARKS.md, #19).
    constraint_exclusion: 'on',
    log_min_duration_statement: `${s.logMinDurationMs}ms`,
    log_lock_waits: 'on',
    shared_preload_libraries: 'pg_stat_statements',
    'pg_stat_statements.track': 'all',
    password_encryption: 'scram-sha-256',
  };
}

/** The redis.conf directives (without the password and paths, which the applier adds). */
export function redisDirectives(s: RedisSettings): Array<[string, string]> {
  const persistence: Array<[string, string]> =
    s.persistence === 'aof'
      ? [
          ['appendonly', 'yes'],
          ['appendfsync', 'everysec'],
          ['save', ''],
        ]
      : s.persistence === 'rdb'
        ? [
            ['appendonly', 'no'],
            ['save', '3600 1 300 100 60 10000'],
          ]
        : [
            ['appendonly', 'no'],
            ['save', ''],
          ];
  return [
    ['port', String(s.port)],
    ['maxmemory', s.maxmemory],
    ['maxmemory-policy', s.maxmemoryPolicy],
    ...persistence,
  ];
}
