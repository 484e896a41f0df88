// The PostgreSQL container: the settings of infra/settings.ts rendered as -c
// flags (the same parameters the local stack writes to its edupulse.conf),
// data and the backup repository bind-mounted from the host so host-side
// jobs (backup, restore, drill) read the repository, WAL archived into the
// repository's wal/ by the zstd archive script (wal-archive.ts), a pg_isready healthcheck.
import * as docker from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import { renderHba, renderIdent } from '../roles/hba.ts';
import { ARCHIVE_WAL_SCRIPT, recipientsFileContent } from './wal-archive.ts';
import { CONTAINER_PORTS, postgresParameters, type PostgresSettings } from './settings.ts';

export interface PostgresServerArgs {
  settings: PostgresSettings;
  /** Encryption at rest: archived WAL is encrypted to these age public keys (the image must then carry age). */
  ageRecipients?: string[];
  image: string;
  network: docker.Network;
  password: pulumi.Input<string>;
  dataDir: string;
  repoDir: string;
  publishPort?: number;
  bindAddress: string;
  /** A host path for the server's socket directory, when PgBouncer shares it. */
  socketDir?: string;
}

/** Inside the container the repository is at /backup; archived WAL goes to /backup/wal. */
export const CONTAINER_REPO = '/backup';
const CONTAINER_DATA = '/var/lib/postgresql/data';
/** The container's pg_hba.conf, uploaded into it and named by hba_file (the image's own, in PGDATA, is then unused). */
export const CONTAINER_HBA = '/etc/edupulse/pg_hba.conf';
/** The archive_command's script (wal-archive.ts), uploaded into the container; the image has zstd. */
export const CONTAINER_ARCHIVE_SCRIPT = '/etc/edupulse/archive-wal.sh';
/** The age recipients archived WAL is encrypted to, uploaded when encryption at rest is on (the image then needs age). */
export const CONTAINER_AGE_RECIPIENTS = '/etc/edupulse/age-recipients';
/** initdb's arguments in the container (POSTGRES_INITDB_ARGS). */
export const INITDB_ARGS = '--data-checksums --auth-host=scram-sha-256 --auth-local=peer';

/**
 * The container's pg_hba: the image's own rule (`host all all all
 * scram-sha-256`) plus replication for the backup login, which the image's
 * rule does not cover ("all" does not match replication connections), so
 * host-side pg_basebackup through the published port is accepted, and no
 * other role may replicate.
 */
export const containerHba = () => renderHba({ superuser: 'postgres', identMap: 'owner', addresses: ['all'] });

/** The container's pg_ident.conf (ident_file): its OS user postgres may be the superuser and PgBouncer's lookup login. */
export const CONTAINER_IDENT = '/etc/edupulse/pg_ident.conf';
export const containerIdent = () => renderIdent('owner', 'postgres', 'postgres');

/** The server's socket directory, shared with the PgBouncer container (a host path) for its peer-authenticated lookups. */
export const CONTAINER_SOCKET_DIR = '/var/run/postgresql';

/** The server's parameters as `-c name=value` arguments, from the one place they are written. */
export function postgresFlags(settings: PostgresSettings, ageRecipients: string[] = [], image?: string): string[] {
  const major = /^(?:[\w.\/-]+\/)?postgres:(\d+)/.exec(image ?? settings.imageTag)?.[1];
  const params = postgresParameters(settings, {
    ...(major ? { major: Number(major) } : {}),
    walArchiveDir: `${CONTAINER_REPO}/wal`,
    archiveScript: CONTAINER_ARCHIVE_SCRIPT,
    ...(ageRecipients.length ? { ageRecipientsFile: CONTAINER_AGE_RECIPIENTS } : {}),
    port: CONTAINER_PORTS.postgres,
    listenAddresses: '*',
  });
  return [...Object.entries(params), ['hba_file', CONTAINER_HBA], ['ident_file', CONTAINER_IDENT]].flatMap(([k, v]) => [
    '-c',
    `${k}=${v}`,
  ]);
}

/** A PostgreSQL container's published port (only when asked for) and pg_isready healthcheck, primary or standby. */
export function postgresContainerPorts(publishPort: number | undefined, bindAddress: string) {
  return publishPort ? [{ internal: CONTAINER_PORTS.postgres, external: publishPort, ip: bindAddress }] : [];
}
export function postgresHealthcheck(startPeriod: string) {
  return {
    tests: ['CMD-SHELL', `pg_isready -U postgres -d postgres -h 127.0.0.1 -p ${CONTAINER_PORTS.postgres}`],
    interval: '10s',
    timeout: '5s',
    retries: 5,
    startPeriod,
  };
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
    this.container = new docker.Container(
      containerName,
      {
        name: containerName,
        image: image.imageId,
        // The repository's directories must exist, owned by the server, before the archive script writes there.
        entrypoints: [
          'bash',
          '-c',
          `install -d -o postgres -g postgres -m 0700 ${CONTAINER_REPO}/wal ${CONTAINER_REPO}/base ${CONTAINER_REPO}/logical && install -d -o postgres -g postgres -m 2775 ${CONTAINER_SOCKET_DIR} && exec docker-entrypoint.sh "$@"`,
          '--',
        ],
        command: ['postgres', ...postgresFlags(args.settings, args.ageRecipients, args.image)],
        envs: [
          pulumi.interpolate`POSTGRES_PASSWORD=${args.password}`,
          `POSTGRES_INITDB_ARGS=${INITDB_ARGS}`,
          'POSTGRES_HOST_AUTH_METHOD=scram-sha-256',
          `PGDATA=${CONTAINER_DATA}/pgdata`,
        ],
        uploads: [
          { file: CONTAINER_HBA, content: containerHba(), permissions: '0644' },
          { file: CONTAINER_IDENT, content: containerIdent(), permissions: '0644' },
          { file: CONTAINER_ARCHIVE_SCRIPT, content: ARCHIVE_WAL_SCRIPT, permissions: '0755' },
          ...(args.ageRecipients?.length
            ? [
                {
                  file: CONTAINER_AGE_RECIPIENTS,
                  content: recipientsFileContent(args.ageRecipients),
                  permissions: '0644',
                },
              ]
            : []),
        ],
        volumes: [
          { hostPath: args.dataDir, containerPath: CONTAINER_DATA },
          { hostPath: args.repoDir, containerPath: CONTAINER_REPO },
          ...(args.socketDir ? [{ hostPath: args.socketDir, containerPath: CONTAINER_SOCKET_DIR }] : []),
        ],
        networksAdvanced: [{ name: args.network.name, aliases: ['postgres'] }],
        ports: postgresContainerPorts(args.publishPort, args.bindAddress),
        healthcheck: postgresHealthcheck('30s'),
        restart: 'unless-stopped',
        // Fast shutdown gets time to write its checkpoint.
        stopSignal: 'SIGINT',
        stopTimeout: 120,
        wait: true,
        waitTimeout: 120,
      },
      {
        parent: this,
        additionalSecretOutputs: ['envs'],
        // The environment matters only at initdb (POSTGRES_PASSWORD, POSTGRES_INITDB_ARGS, PGDATA): a change must not
        // replace the container; the superuser's password is rotated in place by SuperuserPassword.
        ignoreChanges: ['envs'],
      },
    );
    this.containerName = this.container.name;
    this.host = args.publishPort
      ? pulumi.output(args.bindAddress === '0.0.0.0' ? '127.0.0.1' : args.bindAddress)
      : this.container.networkDatas.apply((n) => n?.[0]?.ipAddress ?? '');
    this.port = pulumi.output(args.publishPort ?? CONTAINER_PORTS.postgres);
    this.registerOutputs({ containerName: this.containerName, host: this.host, port: this.port });
  }
}
