// The Redis container: password from a secret (passed in the environment and
// written into a config file at start, never on the command line),
// maxmemory and eviction policy and persistence from infra/settings.ts.
import * as docker from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import { CONTAINER_PORTS, redisDirectives, type RedisSettings } from './settings.ts';

export interface RedisServerArgs {
  settings: RedisSettings;
  image: string;
  network: docker.Network;
  password: pulumi.Input<string>;
  dataDir: string;
  publishPort?: number;
  bindAddress: string;
}

/** Where the container's entrypoint writes the password's config file (inside the container only). */
export const REDIS_CONF = '/tmp/edupulse-redis.conf';

/**
 * The container's entrypoint: write the password into a config file readable
 * by the redis user only, then hand over to the official image's own
 * entrypoint (docker-entrypoint.sh), which chowns the data directory and drops
 * from root to the redis user (gosu) before starting redis-server.
 */
export const REDIS_ENTRYPOINT = [
  'sh',
  '-c',
  'umask 077 && printf "requirepass %s\\n" "$REDIS_PASSWORD" > "$REDIS_CONF_FILE" && chown redis:redis "$REDIS_CONF_FILE" ' +
    '&& exec docker-entrypoint.sh redis-server "$REDIS_CONF_FILE" "$@"',
  '--',
];

/** The non-secret directives as redis-server arguments. */
export function redisFlags(settings: RedisSettings): string[] {
  return redisDirectives({ ...settings, port: CONTAINER_PORTS.redis }).flatMap(([k, v]) => [`--${k}`, v]);
}

export class RedisServer extends pulumi.ComponentResource {
  readonly container: docker.Container;
  readonly containerName: pulumi.Output<string>;

  constructor(name: string, args: RedisServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super('edupulse:infra:RedisServer', name, {}, opts);
    const image = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, { parent: this });
    const containerName = `${name}-redis`;
    this.container = new docker.Container(
      containerName,
      {
        name: containerName,
        image: image.imageId,
        entrypoints: REDIS_ENTRYPOINT,
        command: redisFlags(args.settings),
        envs: [pulumi.interpolate`REDIS_PASSWORD=${args.password}`, `REDIS_CONF_FILE=${REDIS_CONF}`],
        volumes: args.settings.persistence === 'none' ? [] : [{ hostPath: args.dataDir, containerPath: '/data' }],
        networksAdvanced: [{ name: args.network.name, aliases: ['redis'] }],
        ports: args.publishPort
          ? [{ internal: CONTAINER_PORTS.redis, external: args.publishPort, ip: args.bindAddress }]
          : [],
        healthcheck: {
          tests: ['CMD-SHELL', 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping | grep -q PONG'],
          interval: '10s',
          timeout: '5s',
          retries: 5,
        },
        restart: 'unless-stopped',
        wait: true,
      },
      { parent: this, additionalSecretOutputs: ['envs'] },
    );
    this.containerName = this.container.name;
    this.registerOutputs({ containerName: this.containerName });
  }
}
