// The Pulumi program: reads the stack's configuration, composes the
// components, exports the outputs. Everything it declares comes from the
// desired state (infra/settings.ts, roles/, migrations/, views/).
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as docker from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import { declarations } from '../roles/declarations.ts';
import { DatabaseAccess } from './access.ts';
import { readConfig } from './config.ts';
import { CONTAINER_REPO, PostgresServer } from './postgres-server.ts';
import { PostgresExporter } from './postgres-exporter.ts';
import { RedisServer } from './redis-server.ts';
import { hashDir, SuperuserPassword, SyncStandbys, type AdminConnection } from './sql-objects.ts';
import { PgBouncerServer, StandbyServer } from './replication.ts';

// Pulumi.yaml runs the compiled program (dist/infra/index.js); the tests also import the source.
const code = join(fileURLToPath(import.meta.url), '..', '..');
const root = basename(code) === 'dist' ? dirname(code) : code;
if (code !== root) {
  // The dynamic providers run dist/ too: a build older than the sources would deploy what is no longer written.
  const { buildIsFresh } = (await import(pathToFileURL(join(root, 'tools', 'fresh.js')).href)) as {
    buildIsFresh(root: string): boolean;
  };
  if (!buildIsFresh(root))
    throw new Error('edupulse-db: dist/ is older than the TypeScript sources; run `npm run build`, then pulumi again');
}

const config = readConfig();
const stack = pulumi.getStack();
const database = config.settings.postgres.database;

const postgresPassword =
  config.postgresPassword ??
  new random.RandomPassword('postgres-superuser-password', { length: 32, special: false }).result;

let host: pulumi.Output<string>;
let port: pulumi.Output<number>;
let containers: Record<string, pulumi.Output<string>> = {};
let dependsOn: pulumi.Resource[] = [];
let redisPasswordOut: pulumi.Output<string> | undefined;
let network: docker.Network | undefined;
let primary: PostgresServer | undefined;
let adminConnection: pulumi.Output<AdminConnection> | undefined;

if (config.mode === 'docker') {
  const d = config.docker;
  network = new docker.Network('network', { name: `${d.networkName}-${stack}`, internal: false });
  const pooler = config.settings.pooler.enabled;
  // Socket directories as host paths, shared with PgBouncer (its lookups are peer-authenticated on them).
  const socketDir = (node: string) => `${d.dataDir}-${node}-run`;
  const pg = new PostgresServer(`edupulse-${stack}`, {
    settings: config.settings.postgres,
    ageRecipients: config.settings.backup.encryption.recipients,
    image: d.postgresImage,
    network,
    password: postgresPassword,
    dataDir: d.dataDir,
    repoDir: d.repoDir,
    publishPort: d.postgresPort,
    bindAddress: d.bindAddress,
    // Shared with the standbys' PgBouncer entry too when the pooler is on.
    ...(pooler ? { socketDir: socketDir('pg0') } : {}),
  });
  primary = pg;
  const redisPassword =
    config.redisPassword ?? new random.RandomPassword('redis-password', { length: 32, special: false }).result;
  const redis = new RedisServer(`edupulse-${stack}`, {
    settings: config.settings.redis,
    image: d.redisImage,
    network,
    password: redisPassword,
    dataDir: d.redisDataDir,
    publishPort: d.redisPort,
    bindAddress: d.bindAddress,
  });
  host = pg.host;
  port = pg.port;
  containers = { postgres: pg.containerName, redis: redis.containerName };
  // A changed password is set with ALTER ROLE before the provider logs in with it; the container stays.
  const superuser = new SuperuserPassword(
    'postgres-superuser',
    {
      connection: pulumi
        .all([pg.host, pg.port])
        .apply(([h, p]) => ({ host: h, port: p, user: 'postgres', sslmode: 'disable' })),
      password: pulumi.secret(postgresPassword),
    },
    { dependsOn: [pg.container] },
  );
  dependsOn = [pg.container, superuser];
  adminConnection = pulumi
    .all([pg.host, pg.port])
    .apply(([h, p]) => ({ host: h, port: p, user: 'postgres', sslmode: 'disable' }));
  redisPasswordOut = pulumi.secret(redisPassword);
} else {
  host = pulumi.output(config.postgresHost);
  port = pulumi.output(config.postgresAdminPort);
}

const access = new DatabaseAccess('access', {
  declarations,
  database,
  host,
  port,
  username: config.postgresAdminUser,
  password: postgresPassword,
  sslmode: config.sslmode,
  superuser: config.mode === 'docker',
  adoptDatabase: config.adoptDatabase,
  serverReady: dependsOn,
  poolerAuth: config.mode === 'docker' && config.settings.pooler.enabled,
  schema: {
    migrationsHash: hashDir(join(root, 'migrations'), /^\d+_.+\.ts$/),
    declarationsHash: hashDir(join(root, 'views'), /\.(sql|ts)$/),
    lockTimeout: config.settings.migrations.lockTimeout,
  },
});

if (config.mode === 'docker' && network) {
  // Server metrics come from postgres_exporter, as the monitoring login, once that login exists.
  const exporter = new PostgresExporter(`edupulse-${stack}`, {
    image: config.docker.postgresExporterImage,
    network,
    postgresHost: 'postgres',
    database,
    user: declarations.monitor,
    password: access.passwords[declarations.monitor]!,
    publishPort: config.docker.postgresExporterPort,
    bindAddress: config.docker.bindAddress,
    loginReady: [access.roles[declarations.monitor]!],
  });
  containers = { ...containers, postgresExporter: exporter.container.name };

  // Hot standbys, each made from the primary over its own slot as the replicator login, once that login exists.
  const d = config.docker;
  const standbys = Array.from({ length: config.settings.postgres.standbys }, (_, k) => {
    const i = k + 1;
    return new StandbyServer(`edupulse-${stack}-pg${i}`, {
      index: i,
      settings: config.settings.postgres,
      ageRecipients: config.settings.backup.encryption.recipients,
      image: d.postgresImage,
      network: network!,
      replicatorPassword: access.passwords[declarations.replicator]!,
      dataDir: `${d.dataDir}-pg${i}`,
      repoDir: d.repoDir,
      socketDir: `${d.dataDir}-pg${i}-run`,
      bindAddress: d.bindAddress,
      after: [primary!.container, access.roles[declarations.replicator]!],
    });
  });
  for (const s of standbys) containers = { ...containers, [s.name]: s.container.name };
  // Synchronous replication only once they stream: a primary waiting for absent standbys stops every write.
  if (config.settings.postgres.replication === 'sync')
    new SyncStandbys(
      'synchronous-standbys',
      {
        connection: adminConnection!,
        password: pulumi.secret(postgresPassword),
        names: standbys.map((s) => s.name),
      },
      { dependsOn: [...standbys.map((s) => s.container), access.migrations, access.objects] },
    );
  if (config.settings.pooler.enabled) {
    const bouncer = new PgBouncerServer(`edupulse-${stack}-pgbouncer`, {
      pooler: config.settings.pooler,
      database,
      image: d.pgbouncerImage,
      network: network!,
      primarySocketDir: `${d.dataDir}-pg0-run`,
      standbySocketDirs: standbys.map((_, k) => `${d.dataDir}-pg${k + 1}-run`),
      publishPort: d.poolerPort,
      bindAddress: d.bindAddress,
      after: [
        primary!.container,
        access.poolerAuth!,
        access.roles[declarations.pooler]!,
        ...standbys.map((s) => s.container),
      ],
    });
    containers = { ...containers, pgbouncer: bouncer.container.name };
  }
}

export const mode = config.mode;
export const postgresEndpoint = pulumi.interpolate`postgres://${config.postgresAdminUser}@${host}:${port}/${database}`;
export const containerNames = containers;
export const archiveLocation =
  config.mode === 'docker'
    ? `${config.docker.repoDir}/wal (${CONTAINER_REPO}/wal in the container)`
    : "the managed service's own";
export const backupRepository = config.mode === 'docker' ? config.docker.repoDir : undefined;
export const superuserPassword = pulumi.secret(postgresPassword);
export const redisPassword = redisPasswordOut;
export const rolePasswords = pulumi.secret(pulumi.output(access.passwords));
export const appliedMigrations = access.migrations.applied;
