// postgres_exporter (the Prometheus community's), where users expect the
// server's metrics to come from: connections, locks, replication, database and
// table statistics, the archiver. It logs in as the monitoring login (pg_monitor,
// never the superuser), its password from the secret the access component made,
// passed in the environment. Our own textfile metrics cover only what it cannot
// see (backups, the WAL archive's coverage, drills, vacuum planning).
import * as docker from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import { CONTAINER_PORTS } from './settings.ts';

/** The port postgres_exporter listens on in its container (the image's default). */
export const EXPORTER_PORT = 9187;

export interface PostgresExporterArgs {
  image: string;
  network: docker.Network;
  /** The Postgres container's alias on the network. */
  postgresHost: string;
  database: string;
  user: string;
  password: pulumi.Input<string>;
  publishPort?: number;
  bindAddress: string;
  /** What must exist first (the login). On the container itself: a component's dependsOn does not reach its children. */
  loginReady: pulumi.Resource[];
}

export class PostgresExporter extends pulumi.ComponentResource {
  readonly container: docker.Container;

  constructor(name: string, args: PostgresExporterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('edupulse:infra:PostgresExporter', name, {}, opts);
    const image = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, { parent: this });
    const containerName = `${name}-postgres-exporter`;
    this.container = new docker.Container(
      containerName,
      {
        name: containerName,
        image: image.imageId,
        envs: [
          `DATA_SOURCE_URI=${args.postgresHost}:${CONTAINER_PORTS.postgres}/${args.database}?sslmode=disable`,
          `DATA_SOURCE_USER=${args.user}`,
          pulumi.interpolate`DATA_SOURCE_PASS=${args.password}`,
        ],
        networksAdvanced: [{ name: args.network.name, aliases: ['postgres-exporter'] }],
        ports: args.publishPort ? [{ internal: EXPORTER_PORT, external: args.publishPort, ip: args.bindAddress }] : [],
        restart: 'unless-stopped',
      },
      { parent: this, additionalSecretOutputs: ['envs'], dependsOn: args.loginReady },
    );
    this.registerOutputs({ containerName: this.container.name });
  }
}
