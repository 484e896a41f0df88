// The stack's configuration, read once, typed and validated: a bad value
// fails with a message naming the key. Server settings come from
// infra/settings.ts; the stack only says where and how to run them.
import * as pulumi from '@pulumi/pulumi';
import { defaultSettings, EVICTION_POLICIES, REDIS_PERSISTENCE, type Settings } from './settings.ts';

export type StackMode = 'docker' | 'existing';

export interface StackConfig {
  mode: StackMode;
  settings: Settings;
  docker?: {
    postgresImage: string;
    redisImage: string;
    /** Host paths bind-mounted into the containers, so host-side jobs read the repository. */
    dataDir: string;
    repoDir: string;
    redisDataDir: string;
    /** Published only when set; bound to bindAddress (127.0.0.1 by default). */
    postgresPort?: number;
    redisPort?: number;
    bindAddress: string;
    networkName: string;
  };
  /** The superuser's password; generated (random.RandomPassword) when unset. */
  postgresPassword?: pulumi.Output<string>;
  redisPassword?: pulumi.Output<string>;
  /** How the provider reaches an existing server; in docker mode the container's published port or its address. */
  postgresHost?: string;
  postgresAdminPort?: number;
  postgresAdminUser: string;
  sslmode: string;
  /** Existing mode: the database exists and is adopted (imported), not created. */
  adoptDatabase: boolean;
}

export class ConfigError extends Error {
  constructor(readonly key: string, message: string) {
    super(`edupulse:${key}: ${message}`);
    this.name = 'ConfigError';
  }
}

function port(cfg: pulumi.Config, key: string): number | undefined {
  const raw = cfg.get(key);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ConfigError(key, `"${raw}" is not a port (1-65535)`);
  return n;
}

function oneOf<T extends string>(cfg: pulumi.Config, key: string, allowed: readonly T[], fallback: T): T {
  const raw = cfg.get(key);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(key, `"${raw}" is not one of ${allowed.join(', ')}`);
  return raw as T;
}

function absolutePath(cfg: pulumi.Config, key: string, fallback: string): string {
  const raw = cfg.get(key) ?? fallback;
  if (!raw.startsWith('/')) throw new ConfigError(key, `"${raw}" is not an absolute host path`);
  return raw;
}

function image(cfg: pulumi.Config, key: string, fallback: string): string {
  const raw = cfg.get(key) ?? fallback;
  if (!/^[\w.\/-]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$/.test(raw)) throw new ConfigError(key, `"${raw}" is not an image reference`);
  return raw;
}

export function readConfig(cfg = new pulumi.Config('edupulse')): StackConfig {
  const mode = oneOf(cfg, 'mode', ['docker', 'existing'] as const, 'docker');
  const maxmemory = cfg.get('redisMaxmemory') ?? defaultSettings.redis.maxmemory;
  if (!/^\d+(kb|mb|gb)?$/i.test(maxmemory)) throw new ConfigError('redisMaxmemory', `"${maxmemory}" is not a size such as 256mb`);
  const settings: Settings = {
    ...defaultSettings,
    postgres: { ...defaultSettings.postgres, imageTag: image(cfg, 'postgresImage', defaultSettings.postgres.imageTag), port: 5432 },
    redis: {
      ...defaultSettings.redis, port: 6379, maxmemory,
      maxmemoryPolicy: oneOf(cfg, 'redisEvictionPolicy', EVICTION_POLICIES, defaultSettings.redis.maxmemoryPolicy),
      persistence: oneOf(cfg, 'redisPersistence', REDIS_PERSISTENCE, defaultSettings.redis.persistence),
    },
  };
  const archiveTimeout = cfg.get('archiveTimeoutSeconds');
  if (archiveTimeout !== undefined) {
    const n = Number(archiveTimeout);
    if (!Number.isInteger(n) || n < 0 || n > 86400) throw new ConfigError('archiveTimeoutSeconds', `"${archiveTimeout}" is not a whole number of seconds (0-86400)`);
    settings.postgres.archiveTimeoutSeconds = n;
  }
  const postgresPassword = cfg.getSecret('postgresPassword');
  const redisPassword = cfg.getSecret('redisPassword');
  if (mode === 'existing') {
    const host = cfg.get('postgresHost');
    if (!host) throw new ConfigError('postgresHost', 'is required when mode is existing (the server to manage)');
    if (!postgresPassword) throw new ConfigError('postgresPassword', 'is required (as a secret) when mode is existing');
    return {
      mode, settings, postgresPassword, redisPassword, postgresHost: host, postgresAdminPort: port(cfg, 'postgresPort') ?? 5432,
      postgresAdminUser: cfg.get('postgresAdminUser') ?? 'postgres', sslmode: oneOf(cfg, 'sslmode', ['disable', 'require', 'verify-ca', 'verify-full'] as const, 'require'),
      adoptDatabase: oneOf(cfg, 'adoptDatabase', ['true', 'false'] as const, 'true') === 'true',
    };
  }
  const postgresPort = port(cfg, 'postgresPort');
  const bindAddress = cfg.get('bindAddress') ?? '127.0.0.1';
  if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(bindAddress)) throw new ConfigError('bindAddress', `"${bindAddress}" is not an IPv4 address`);
  return {
    mode, settings, postgresPassword, redisPassword,
    docker: {
      postgresImage: settings.postgres.imageTag,
      redisImage: image(cfg, 'redisImage', 'redis:7'),
      dataDir: absolutePath(cfg, 'dataDir', '/var/lib/edupulse/pgdata'),
      repoDir: absolutePath(cfg, 'repoDir', '/var/lib/edupulse/repo'),
      redisDataDir: absolutePath(cfg, 'redisDataDir', '/var/lib/edupulse/redis'),
      postgresPort, redisPort: port(cfg, 'redisPort'), bindAddress,
      networkName: cfg.get('networkName') ?? 'edupulse',
    },
    postgresAdminUser: 'postgres', sslmode: 'disable', adoptDatabase: false,
  };
}
