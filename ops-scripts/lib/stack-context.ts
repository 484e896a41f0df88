// Everything the local stack's jobs need to know, resolved once: settings
// (validated: a bad value is exit 2 before anything is touched), paths,
// binaries and the OS user the servers run as.
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { postgresParameters, type Settings } from '../../infra/settings.ts';
import { ensureStackBinaries, findPgBinaries, findRedisServer, type PgBinaries } from './binaries.ts';
import type { ClusterSpec } from './cluster.ts';
import { badInput } from './errors.ts';
import type { Logger } from './logger.ts';
import { currentUserName, serviceUser } from './os-user.ts';
import type { RedisSpec } from './redis.ts';
import { run, type OsUser } from './run.ts';
import { SUPERUSER } from './secrets.ts';
import { renderHba, renderIdent } from '../../roles/hba.ts';
import { localRestoreCommand } from './backup/wal-store.ts';
import { nodeName } from './topology.ts';
import { settingsFromEnv } from './settings.ts';
import { dataDirMajor, statePaths, type StatePaths } from './state.ts';

export interface StackContext {
  settings: Settings;
  paths: StatePaths;
  pg: PgBinaries;
  redisServer: string;
  /** The OS user the servers run as; undefined: this process's user. */
  as: OsUser | undefined;
  logger: Logger;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Resolves the stack. `install` allows installing missing packages (up);
 * other jobs only look. An existing cluster is run with binaries of its own
 * major version, whatever else is newest.
 */
export async function resolveStack(opts: { env?: Env; logger: Logger; install?: boolean }): Promise<StackContext> {
  const env = opts.env ?? process.env;
  const settings = settingsFromEnv(env);
  const paths = statePaths(env);
  const as = serviceUser();
  const major = dataDirMajor(paths.dataDir);
  let pg: PgBinaries | undefined;
  let redisServer: string | undefined;
  if (opts.install && major === undefined) {
    ({ pg, redisServer } = await ensureStackBinaries(settings.postgres.minMajorVersion, opts.logger));
  } else {
    pg = await findPgBinaries({ minMajor: settings.postgres.minMajorVersion, major });
    redisServer = await findRedisServer();
    if (!pg) {
      throw badInput(
        major === undefined
          ? `PostgreSQL ${settings.postgres.minMajorVersion} or newer not found on this host`
          : `the cluster in ${paths.dataDir} is PostgreSQL ${major}, and its binaries are not installed`,
        `install PostgreSQL ${major ?? settings.postgres.minMajorVersion} (Debian: apt-get install postgresql-${major ?? settings.postgres.minMajorVersion}), or set EDUPULSE_PG_BINDIR`,
      );
    }
    if (!redisServer)
      throw badInput(
        'redis-server not found on this host',
        'apt-get install redis-server, or set EDUPULSE_REDIS_SERVER',
      );
  }
  return { settings, paths, pg, redisServer, as, logger: opts.logger };
}

/** The primary's port: node i listens on EDUPULSE_PG_PORT + i (topology.ts). */
export const primaryPort = (ctx: Pick<StackContext, 'settings' | 'paths'>) =>
  ctx.settings.postgres.port + ctx.paths.primaryNode;

export const osOwnerName = (ctx: Pick<StackContext, 'as'>) => ctx.as?.name ?? currentUserName();

/**
 * The service user must be able to reach the state directory: below a 0700
 * home directory it cannot, and initdb would fail deep inside. Checked before
 * anything is created.
 */
export async function checkReachable(ctx: Pick<StackContext, 'as' | 'paths'>): Promise<void> {
  for (const target of new Set([ctx.paths.root, ctx.paths.repoDir])) {
    await checkReachableBy(
      ctx.as,
      target,
      'choose a state directory it can reach, for example EDUPULSE_STATE_DIR=/var/lib/edupulse (and EDUPULSE_REPO_DIR likewise)',
    );
  }
}

/** Bad input unless `user` can enter the nearest existing directory of `target` (and so create it). */
export async function checkReachableBy(user: OsUser | undefined, target: string, hint: string): Promise<void> {
  if (!user) return;
  let existing = target;
  while (!existsSync(existing)) existing = dirname(existing);
  const r = await run('/bin/sh', ['-c', 'cd -- "$1"', 'sh', existing], { as: user, nothrow: true });
  if (r.code !== 0) {
    throw badInput(
      `${target} is not reachable by the OS user "${user.name}" that runs PostgreSQL (it cannot enter ${existing} or a directory above it)`,
      hint,
    );
  }
}

export function clusterSpec(ctx: StackContext): ClusterSpec {
  return {
    pg: ctx.pg,
    dataDir: ctx.paths.dataDir,
    socketDir: ctx.paths.socketDir,
    logFile: ctx.paths.pgLog,
    port: primaryPort(ctx),
    as: ctx.as,
    logger: ctx.logger,
  };
}

/** Our settings plus what only the local stack decides: where the socket lives. */
export function localParameters(ctx: StackContext): Record<string, string> {
  return {
    ...postgresParameters(ctx.settings.postgres, {
      walArchiveDir: ctx.paths.walArchiveDir,
      archiveScript: ctx.paths.archiveScript,
      major: ctx.pg.major,
      port: primaryPort(ctx),
      ...(ctx.settings.backup.encryption.recipients.length ? { ageRecipientsFile: ctx.paths.ageRecipients } : {}),
    }),
    unix_socket_directories: ctx.paths.socketDir,
    unix_socket_permissions: '0700',
    // Each node by its name in ps and logs; set alike on primary and standbys (it needs a restart, and a
    // promotion must not leave one pending).
    cluster_name: nodeName(ctx.paths.primaryNode),
    // WAL a server no longer holds comes from the archive: a standby long stopped catches up, and pg_rewind
    // (--restore-target-wal) finds an old primary's recycled segments. Ignored outside recovery. Encrypted
    // archives need the identity, which the database host does not hold: streaming only then.
    ...(ctx.settings.backup.encryption.recipients.length
      ? {}
      : { restore_command: localRestoreCommand(ctx.paths.walArchiveDir) }),
  };
}

/** TCP on loopback with scram-sha-256, replication only for the backup login; the socket only for the cluster's OS owner, as the superuser. */
export function localHba(): string {
  return renderHba({ superuser: SUPERUSER, identMap: 'owner', addresses: ['127.0.0.1/32', '::1/128'] });
}

export function localIdent(ctx: StackContext): string {
  return renderIdent('owner', osOwnerName(ctx), SUPERUSER);
}

export function redisSpec(ctx: StackContext, password: string): RedisSpec {
  return {
    server: ctx.redisServer,
    settings: ctx.settings.redis,
    password,
    dir: ctx.paths.redisDir,
    confFile: ctx.paths.redisConf,
    pidFile: ctx.paths.redisPidFile,
    logFile: ctx.paths.redisLog,
    as: ctx.as,
    logger: ctx.logger,
  };
}
