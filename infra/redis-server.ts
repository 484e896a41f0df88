// The Redis container: password from a secret (passed in the environment and
// written into a config file at start, never on the command line),
// maxmemory and eviction policy and persistence from infra/settings.ts.
import * as docker from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import { redisDirectives, type RedisSettings } from './settings.ts';

export interface RedisServerArgs {
  settings: RedisSettings;
  image: string;
  network: docker.Network;
  password: pulumi.Input<string>;
  dataDir: string;
  publishPort?: number;
  bindAddress: string;
}

/** The non-secret directives as redis-server arguments. */
export function redisFlags(settings: RedisSettings): string[] {
  return redisDirectives({ ...settings, port: 6379 }).flatMap(([k, v]) => [`--${k}`, v]);
}

export class RedisServer extends pulumi.ComponentResource {
  readonly container: docker.Container;
  readonly containerName: pulumi.Output<string>;

  constructor(name: string, args: RedisServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super('edupulse:infra:RedisServer', name, {}, opts);
    const image = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, { parent: this });
    const containerName = `${name}-redis`;
    this.container = new docker.Container(containerName, {
      name: containerName,
      image: image.imageId,
      entrypoints: ['sh', '-c', 'umask 077 && printf "requirepass %s\\n" "$REDIS_PASSWORD" > /tmp/redis.conf && exec redis-server /tmp/redis.conf "$@"', '--'],
      command: redisFlags(args.settings),
      envs: [pulumi.interpolate`REDIS_PASSWORD=${args.password}`],
      volumes: args.settings.persistence === 'none' ? [] : [{ hostPath: args.dataDir, containerPath: '/data' }],
      networksAdvanced: [{ name: args.network.name, aliases: ['redis'] }],
      ports: args.publishPort ? [{ internal: 6379, external: args.publishPort, ip: args.bindAddress }] : [],
      healthcheck: {
        tests: ['CMD-SHELL', 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping | grep -q PONG'],
        interval: '10s', timeout: '5s', retries: 5,
      },
      restart: 'unless-stopped',
      wait: true,
    }, { parent: this, additionalSecretOutputs: ['envs'] });
    this.containerName = this.container.name;
    this.registerOutputs({ containerName: this.containerName });
  }
}
