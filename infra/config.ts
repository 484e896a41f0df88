// The stack's configuration, read once, typed and validated: a bad value
// fails with a message naming the key. Server settings come from
// infra/settings.ts, checked by the same pure checks as its EDUPULSE_*
// variables; the stack only says where and how to run them.
import * as pulumi from '@pulumi/pulumi';
import {
  check,
  CONTAINER_PORTS,
  defaultSettings,
  EVICTION_POLICIES,
  PATTERNS,
  REDIS_PERSISTENCE,
  REPLICATION_MODES,
  POOL_MODES,
  type Settings,
} from './settings.ts';

export const STACK_MODES = ['docker', 'existing'] as const;
export type StackMode = (typeof STACK_MODES)[number];
export const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;

interface CommonConfig {
  settings: Settings;
  /** The superuser's password; generated (random.RandomPassword) when unset. */
  postgresPassword?: pulumi.Output<string>;
  redisPassword?: pulumi.Output<string>;
  postgresAdminUser: string;
  sslmode: (typeof SSL_MODES)[number];
  /** Existing mode: the database exists and is adopted (imported), not created. */
  adoptDatabase: boolean;
}

/** Containers on a Docker host, created by the program. */
export interface DockerConfig extends CommonConfig {
  mode: 'docker';
  docker: {
    postgresImage: string;
    redisImage: string;
    postgresExporterImage: string;
    /** Host paths bind-mounted into the containers, so host-side jobs read the repository. */
    dataDir: string;
    repoDir: string;
    redisDataDir: string;
    /** Published only when set; bound to bindAddress (127.0.0.1 by default). */
    postgresPort?: number;
    redisPort?: number;
    /** postgres_exporter's metrics port, published only when set. */
    postgresExporterPort?: number;
    pgbouncerImage: string;
    /** PgBouncer's port, published only when set (with edupulse:pooler). */
    poolerPort?: number;
    bindAddress: string;
    networkName: string;
  };
}

/** A server that exists already (a managed service): the program manages what is on it. */
export interface ExistingConfig extends CommonConfig {
  mode: 'existing';
  postgresHost: string;
  postgresAdminPort: number;
}

export type StackConfig = DockerConfig | ExistingConfig;

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(`edupulse:${key}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** A config key through one of the settings' checks; the error names the key. */
function get<T>(cfg: pulumi.Config, key: string, parse: (raw: string) => T): T | undefined {
  const raw = cfg.get(key);
  if (raw === undefined) return undefined;
  try {
    return parse(raw);
  } catch (err) {
    throw new ConfigError(key, (err as Error).message);
  }
}

const port = (cfg: pulumi.Config, key: string) => get(cfg, key, (r) => check.int(r, 1, 65535));
const oneOf = <T extends string>(cfg: pulumi.Config, key: string, allowed: readonly T[], fallback: T) =>
  get(cfg, key, (r) => check.oneOf(r, allowed)) ?? fallback;
const shaped = (cfg: pulumi.Config, key: string, [pattern, what]: readonly [RegExp, string], fallback: string) =>
  get(cfg, key, (r) => check.match(r, pattern, what)) ?? fallback;
const absolutePath = (cfg: pulumi.Config, key: string, fallback: string) =>
  shaped(cfg, key, [/^\//, 'an absolute host path'], fallback);

export function readConfig(cfg = new pulumi.Config('edupulse')): StackConfig {
  const mode = oneOf(cfg, 'mode', STACK_MODES, 'docker');
  const d = defaultSettings;
  const settings: Settings = {
    ...d,
    postgres: {
      ...d.postgres,
      imageTag: shaped(cfg, 'postgresImage', PATTERNS.image, d.postgres.imageTag),
      port: CONTAINER_PORTS.postgres,
      archiveTimeoutSeconds:
        get(cfg, 'archiveTimeoutSeconds', (r) => check.int(r, 0, 86400)) ?? d.postgres.archiveTimeoutSeconds,
      standbys: get(cfg, 'standbys', (r) => check.int(r, 0, 3)) ?? d.postgres.standbys,
      replication: oneOf(cfg, 'replication', REPLICATION_MODES, d.postgres.replication),
    },
    pooler: {
      ...d.pooler,
      enabled: oneOf(cfg, 'pooler', ['true', 'false'] as const, d.pooler.enabled ? 'true' : 'false') === 'true',
      poolMode: oneOf(cfg, 'poolerMode', POOL_MODES, d.pooler.poolMode),
    },
    backup: {
      ...d.backup,
      encryption: {
        recipients:
          get(cfg, 'backupAgeRecipients', (r) =>
            r.split(',').map((k) => check.match(k.trim(), ...PATTERNS.ageRecipient)),
          ) ?? d.backup.encryption.recipients,
      },
    },
    redis: {
      ...d.redis,
      port: CONTAINER_PORTS.redis,
      maxmemory: shaped(cfg, 'redisMaxmemory', PATTERNS.size, d.redis.maxmemory),
      maxmemoryPolicy: oneOf(cfg, 'redisEvictionPolicy', EVICTION_POLICIES, d.redis.maxmemoryPolicy),
      persistence: oneOf(cfg, 'redisPersistence', REDIS_PERSISTENCE, d.redis.persistence),
    },
  };
  if (settings.postgres.replication === 'sync' && settings.postgres.standbys === 0)
    throw new ConfigError('replication', 'sync needs a standby to confirm commits; set edupulse:standbys to 1 or more');
  const postgresPassword = cfg.getSecret('postgresPassword');
  const redisPassword = cfg.getSecret('redisPassword');
  if (mode === 'existing') {
    const host = cfg.get('postgresHost');
    if (!host) throw new ConfigError('postgresHost', 'is required when mode is existing (the server to manage)');
    if (!postgresPassword) throw new ConfigError('postgresPassword', 'is required (as a secret) when mode is existing');
    // A managed service runs its own replicas and pooler (RDS read replicas and RDS Proxy, Cloud SQL, ...).
    if (settings.postgres.standbys > 0 || settings.pooler.enabled)
      throw new ConfigError(
        settings.postgres.standbys > 0 ? 'standbys' : 'pooler',
        "is for mode docker; a managed server's replicas and pooler are the service's own",
      );
    return {
      mode,
      settings,
      postgresPassword,
      redisPassword,
      postgresHost: host,
      postgresAdminPort: port(cfg, 'postgresPort') ?? CONTAINER_PORTS.postgres,
      postgresAdminUser: cfg.get('postgresAdminUser') ?? 'postgres',
      sslmode: oneOf(cfg, 'sslmode', SSL_MODES, 'require'),
      adoptDatabase: oneOf(cfg, 'adoptDatabase', ['true', 'false'] as const, 'true') === 'true',
    };
  }
  // Encrypted archiving runs age inside the container: the official image has zstd but not age.
  if (
    settings.backup.encryption.recipients.length &&
    /^(docker\.io\/)?(library\/)?postgres:/.test(settings.postgres.imageTag)
  )
    throw new ConfigError(
      'postgresImage',
      `${settings.postgres.imageTag} has no age, which archiving needs with edupulse:backupAgeRecipients set; build an image FROM it with age installed (apt-get install age) and name it here`,
    );
  return {
    mode,
    settings,
    postgresPassword,
    redisPassword,
    docker: {
      postgresImage: settings.postgres.imageTag,
      redisImage: shaped(cfg, 'redisImage', PATTERNS.image, 'redis:7'),
      postgresExporterImage: shaped(
        cfg,
        'postgresExporterImage',
        PATTERNS.image,
        'quay.io/prometheuscommunity/postgres-exporter:v0.15.0',
      ),
      dataDir: absolutePath(cfg, 'dataDir', '/var/lib/edupulse/pgdata'),
      repoDir: absolutePath(cfg, 'repoDir', '/var/lib/edupulse/repo'),
      redisDataDir: absolutePath(cfg, 'redisDataDir', '/var/lib/edupulse/redis'),
      postgresPort: port(cfg, 'postgresPort'),
      redisPort: port(cfg, 'redisPort'),
      postgresExporterPort: port(cfg, 'postgresExporterPort'),
      // CloudNativePG's PgBouncer image (its Pooler runs it); the program names the config file itself.
      pgbouncerImage: shaped(cfg, 'pgbouncerImage', PATTERNS.image, 'ghcr.io/cloudnative-pg/pgbouncer:1.23.1'),
      poolerPort: port(cfg, 'poolerPort'),
      bindAddress: shaped(cfg, 'bindAddress', [/^(\d{1,3}\.){3}\d{1,3}$/, 'an IPv4 address'], '127.0.0.1'),
      networkName: cfg.get('networkName') ?? 'edupulse',
    },
    postgresAdminUser: 'postgres',
    sslmode: 'disable',
    adoptDatabase: false,
  };
}
