// The PostgreSQL container: the settings of infra/settings.ts rendered as -c
// flags (the same parameters the local stack writes to its edupulse.conf),
// data and the backup repository bind-mounted from the host so host-side
// jobs (backup, restore, drill) read the repository, WAL archived into the
// repository's wal/ with basic_archive, a pg_isready healthcheck.
import * as docker from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import { postgresParameters, type PostgresSettings } from './settings.ts';

export interface PostgresServerArgs {
  settings: PostgresSettings;
  image: string;
  network: docker.Network;
  password: pulumi.Input<string>;
  dataDir: string;
  repoDir: string;
  publishPort?: number;
  bindAddress: string;
}

/** Inside the container the repository is at /backup; archived WAL goes to /backup/wal. */
export const CONTAINER_REPO = '/backup';
const CONTAINER_DATA = '/var/lib/postgresql/data';

/** The server's parameters as `-c name=value` arguments, from the one place they are written. */
export function postgresFlags(settings: PostgresSettings): string[] {
  const params = postgresParameters(settings, {
    walArchiveDir: `${CONTAINER_REPO}/wal`, archiveMethod: 'basic_archive', port: 5432, listenAddresses: '*',
  });
  return Object.entries(params).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
}

export class PostgresServer extends pulumi.ComponentResource {
  readonly container: docker.Container;
  readonly containerName: pulumi.Output<string>;
  /** Where the provider and host-side jobs reach it. */
  readonly host: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;

  constructor(name: string, args: PostgresServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super('edupulse:infra:PostgresServer', name, {}, opts);
    const image = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, { parent: this });
    const containerName = `${name}-postgres`;
    this.container = new docker.Container(containerName, {
      name: containerName,
      image: image.imageId,
      // The repository's directories must exist, owned by the server, before basic_archive writes there.
      entrypoints: ['bash', '-c',
        `install -d -o postgres -g postgres -m 0700 ${CONTAINER_REPO}/wal ${CONTAINER_REPO}/base ${CONTAINER_REPO}/logical && exec docker-entrypoint.sh "$@"`, '--'],
      command: ['postgres', ...postgresFlags(args.settings)],
      envs: [
        pulumi.interpolate`POSTGRES_PASSWORD=${args.password}`,
        'POSTGRES_INITDB_ARGS=--data-checksums --auth-host=scram-sha-256 --auth-local=peer',
        'POSTGRES_HOST_AUTH_METHOD=scram-sha-256',
        `PGDATA=${CONTAINER_DATA}/pgdata`,
      ],
      volumes: [
        { hostPath: args.dataDir, containerPath: CONTAINER_DATA },
        { hostPath: args.repoDir, containerPath: CONTAINER_REPO },
      ],
      networksAdvanced: [{ name: args.network.name, aliases: ['postgres'] }],
      ports: args.publishPort ? [{ internal: 5432, external: args.publishPort, ip: args.bindAddress }] : [],
      healthcheck: {
        tests: ['CMD-SHELL', 'pg_isready -U postgres -d postgres -h 127.0.0.1 -p 5432'],
        interval: '10s', timeout: '5s', retries: 5, startPeriod: '30s',
      },
      restart: 'unless-stopped',
      // Fast shutdown gets time to write its checkpoint.
      stopSignal: 'SIGINT',
      stopTimeout: 120,
      wait: true,
      waitTimeout: 120,
    }, { parent: this, additionalSecretOutputs: ['envs'] });
    this.containerName = this.container.name;
    this.host = args.publishPort
      ? pulumi.output(args.bindAddress === '0.0.0.0' ? '127.0.0.1' : args.bindAddress)
      : this.container.networkDatas.apply((n) => n?.[0]?.ipAddress ?? '');
    this.port = pulumi.output(args.publishPort ?? 5432);
    this.registerOutputs({ containerName: this.containerName, host: this.host, port: this.port });
  }
}
