// Hot standbys and PgBouncer as containers, declared from the same settings
// as the local stack's (infra/settings.ts: postgres.standbys, replication,
// pooler). A standby container makes its data directory with pg_basebackup
// over its own physical slot as the replicator login on first start, then
// runs the image's entrypoint as a hot standby with the primary's parameters
// plus where it streams from (primary_conninfo names a passfile, never a
// password). PgBouncer shares the servers' socket directories (host paths) and
// runs as the servers' OS user, so its lookup login is peer-authenticated as on
// the local stack: no password is written for it. Promotion across machines
// is Patroni's or CloudNativePG's job (README, "Failover").
import * as docker from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import { declarations } from '../roles/declarations.ts';
import { nodeName, slotName, standbyReplicationParameters } from '../ops-scripts/lib/topology.ts';
import { pgbouncerAuthFile, pgbouncerHba, pgbouncerIni } from './pgbouncer.ts';
import {
  CONTAINER_REPO,
  CONTAINER_SOCKET_DIR,
  postgresContainerPorts,
  postgresFlags,
  postgresHealthcheck,
} from './postgres-server.ts';
import { CONTAINER_PORTS, type PoolerSettings, type PostgresSettings } from './settings.ts';

/** The official postgres image's OS user: PgBouncer runs as it, so the server's peer check maps it (pg_ident 'owner'). */
export const POSTGRES_UID = '999:999';
const PASSFILE_IN = '/etc/edupulse/replication.pgpass';
/** Copied at start, owned by postgres, 0600 (uploads are root's). */
export const STANDBY_PASSFILE = '/var/lib/postgresql/replication.pgpass';
const CONTAINER_DATA = '/var/lib/postgresql/data';
const PGDATA = `${CONTAINER_DATA}/pgdata`;

/** A standby's own parameters beyond the primary's: its name and where it streams from. */
export function standbyFlags(
  settings: PostgresSettings,
  i: number,
  image: string,
  ageRecipients: string[] = [],
): string[] {
  const own = standbyReplicationParameters(i, { host: 'postgres', port: CONTAINER_PORTS.postgres }, STANDBY_PASSFILE);
  return [
    ...postgresFlags(settings, ageRecipients, image),
    ...Object.entries(own).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
  ];
}

/**
 * The standby container's first-start script: pg_basebackup from the primary over the standby's slot (made
 * by -C, or reused when a failed start made it already), standby.signal, then the image's entrypoint.
 */
export function standbyEntrypoint(i: number): string[] {
  const base = `pg_basebackup -h postgres -p ${CONTAINER_PORTS.postgres} -U ${declarations.replicator} -D ${PGDATA} -X stream -c fast -S ${slotName(i)} -d "application_name=${nodeName(i)}"`;
  return [
    'bash',
    '-c',
    [
      'set -e',
      `install -o postgres -g postgres -m 0600 ${PASSFILE_IN} ${STANDBY_PASSFILE}`,
      `install -d -o postgres -g postgres -m 0700 ${CONTAINER_REPO}/wal ${CONTAINER_DATA}`,
      `install -d -o postgres -g postgres -m 2775 ${CONTAINER_SOCKET_DIR}`,
      `if [ ! -s ${PGDATA}/PG_VERSION ]; then`,
      `  rm -rf ${PGDATA}`,
      `  export PGPASSFILE=${STANDBY_PASSFILE}`,
      `  gosu postgres ${base} -C || gosu postgres ${base}`,
      `  gosu postgres touch ${PGDATA}/standby.signal`,
      'fi',
      'exec docker-entrypoint.sh "$@"',
    ].join('\n'),
    '--',
  ];
}

export interface StandbyServerArgs {
  index: number;
  settings: PostgresSettings;
  ageRecipients?: string[];
  image: string;
  network: docker.Network;
  replicatorPassword: pulumi.Input<string>;
  dataDir: string;
  repoDir: string;
  socketDir: string;
  publishPort?: number;
  bindAddress: string;
  /** What the container waits for (a component's dependsOn does not reach its children). */
  after: pulumi.Resource[];
}

export class StandbyServer extends pulumi.ComponentResource {
  readonly container: docker.Container;
  readonly name: string;

  constructor(name: string, args: StandbyServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super('edupulse:infra:StandbyServer', name, {}, opts);
    this.name = nodeName(args.index);
    const image = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, { parent: this });
    this.container = new docker.Container(
      name,
      {
        name,
        image: image.imageId,
        entrypoints: standbyEntrypoint(args.index),
        command: ['postgres', ...standbyFlags(args.settings, args.index, args.image, args.ageRecipients)],
        envs: [`PGDATA=${PGDATA}`],
        uploads: [
          {
            file: PASSFILE_IN,
            content: pulumi.interpolate`*:*:*:${declarations.replicator}:${args.replicatorPassword}\n`,
            permissions: '0600',
          },
        ],
        volumes: [
          { hostPath: args.dataDir, containerPath: CONTAINER_DATA },
          // A promoted standby archives into the same repository.
          { hostPath: args.repoDir, containerPath: CONTAINER_REPO },
          { hostPath: args.socketDir, containerPath: CONTAINER_SOCKET_DIR },
        ],
        networksAdvanced: [{ name: args.network.name, aliases: [this.name] }],
        ports: postgresContainerPorts(args.publishPort, args.bindAddress),
        // A first start copies the primary first.
        healthcheck: postgresHealthcheck('120s'),
        restart: 'unless-stopped',
        stopSignal: 'SIGINT',
        stopTimeout: 120,
        wait: true,
        waitTimeout: 300,
      },
      { parent: this, additionalSecretOutputs: ['uploads'], dependsOn: args.after },
    );
    this.registerOutputs({ containerName: this.container.name });
  }
}

const PGBOUNCER_DIR = '/etc/pgbouncer';
/** Where each standby's socket directory is mounted in the PgBouncer container. */
const standbySocket = (i: number) => `/var/run/postgresql-${nodeName(i)}`;

/** The PgBouncer container's configuration: the primary's database, and reporting on the first standby. */
export function containerPgbouncerIni(p: PoolerSettings, database: string, standbys: number): string {
  const entry = (socket: string) => `host=${socket} port=${CONTAINER_PORTS.postgres} dbname=${database}`;
  return pgbouncerIni(p, {
    databases: {
      [database]: entry(CONTAINER_SOCKET_DIR),
      ...(standbys > 0 ? { [`${database}_reporting`]: entry(standbySocket(1)) } : {}),
    },
    listenAddr: '*',
    port: PGBOUNCER_PORT,
    unixSocketDir: '/tmp',
    hbaFile: `${PGBOUNCER_DIR}/pg_hba.conf`,
    authFile: `${PGBOUNCER_DIR}/userlist.txt`,
    adminUser: 'postgres',
  });
}

/** PgBouncer's port in its container (its own default). */
export const PGBOUNCER_PORT = 6432;

export interface PgBouncerServerArgs {
  pooler: PoolerSettings;
  database: string;
  image: string;
  network: docker.Network;
  /** Host paths of the primary's and each standby's socket directory. */
  primarySocketDir: string;
  standbySocketDirs: string[];
  publishPort?: number;
  bindAddress: string;
  /** What the container waits for: the servers and the lookup function. */
  after: pulumi.Resource[];
}

export class PgBouncerServer extends pulumi.ComponentResource {
  readonly container: docker.Container;

  constructor(name: string, args: PgBouncerServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super('edupulse:infra:PgBouncerServer', name, {}, opts);
    const image = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, { parent: this });
    this.container = new docker.Container(
      name,
      {
        name,
        image: image.imageId,
        // The configuration file named explicitly: what runs does not depend on an image's entrypoint conventions.
        entrypoints: ['pgbouncer', `${PGBOUNCER_DIR}/pgbouncer.ini`],
        user: POSTGRES_UID,
        uploads: [
          {
            file: `${PGBOUNCER_DIR}/pgbouncer.ini`,
            content: containerPgbouncerIni(args.pooler, args.database, args.standbySocketDirs.length),
            permissions: '0644',
          },
          {
            file: `${PGBOUNCER_DIR}/pg_hba.conf`,
            content: pgbouncerHba('postgres', ['0.0.0.0/0', '::/0']),
            permissions: '0644',
          },
          { file: `${PGBOUNCER_DIR}/userlist.txt`, content: pgbouncerAuthFile('postgres'), permissions: '0644' },
        ],
        volumes: [
          { hostPath: args.primarySocketDir, containerPath: CONTAINER_SOCKET_DIR },
          ...args.standbySocketDirs.map((hostPath, i) => ({ hostPath, containerPath: standbySocket(i + 1) })),
        ],
        networksAdvanced: [{ name: args.network.name, aliases: ['pgbouncer'] }],
        ports: args.publishPort ? [{ internal: PGBOUNCER_PORT, external: args.publishPort, ip: args.bindAddress }] : [],
        restart: 'unless-stopped',
        // SIGINT: PgBouncer's safe shutdown (waits for transactions in flight).
        stopSignal: 'SIGINT',
        stopTimeout: 60,
      },
      { parent: this, dependsOn: args.after },
    );
    this.registerOutputs({ containerName: this.container.name });
  }
}
