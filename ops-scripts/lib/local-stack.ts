// The local stack: PostgreSQL and Redis from the host's binaries, with the
// settings of infra/settings.ts, in the state directory. `up` is idempotent:
// on a running stack it changes nothing and says so.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  clusterRunning,
  configureCluster,
  initCluster,
  postmasterPid,
  reloadCluster,
  startCluster,
  stopCluster,
} from './cluster.ts';
import { withClient, type PgConfig } from './db.ts';
import { badInput } from './errors.ts';
import { portFree, portHolder } from './ports.ts';
import { applyDesiredState } from './desired-state.ts';
import { ensurePrivateDir, writeFileAtomic } from './files.ts';
import { ARCHIVE_WAL_SCRIPT, recipientsFileContent } from '../../infra/wal-archive.ts';
import { secretsFileStore } from './roles/password-store.ts';
import type { StepStatus } from './logger.ts';
import { applyRuntimeDirectives, configureRedis, redisPid, startRedis, stopRedis } from './redis.ts';
import { loadOrCreateSecrets, readSecrets, type Secrets } from './secrets.ts';
import { LAYOUT } from './backup/layout.ts';
import { downStandbys, legacyStandbyRunning, standbySpecs, upStandbys } from './standby.ts';
import { nodeName } from './topology.ts';
import { downPooler, poolerPid, upPooler } from './pooler.ts';
import {
  checkReachable,
  clusterSpec,
  localHba,
  localIdent,
  localParameters,
  primaryPort,
  redisSpec,
  type StackContext,
} from './stack-context.ts';

export interface Step {
  name: string;
  status: StepStatus;
  detail?: string;
}

export interface UpResult {
  steps: Step[];
  /** False when the stack was already up as declared and nothing was done. */
  changed: boolean;
}

class Steps {
  readonly list: Step[] = [];
  constructor(private readonly ctx: StackContext) {}
  add(name: string, status: StepStatus, detail?: string): void {
    const step = { name, status, ...(detail ? { detail } : {}) };
    this.list.push(step);
    this.ctx.logger.log({ event: 'step', step: name, status, detail });
  }
}

function stateDirs(ctx: StackContext): string[] {
  const p = ctx.paths;
  return [
    p.root,
    join(p.root, 'pg'),
    p.logDir,
    p.socketDir,
    p.redisDir,
    p.repoDir,
    p.walArchiveDir,
    ...Object.values(LAYOUT.kinds).map((d) => join(p.repoDir, d)),
  ];
}

/** The superuser's connection to a database of the local cluster. */
export function localPgConfig(ctx: StackContext, secrets: Secrets, database: string): PgConfig {
  return {
    host: '127.0.0.1',
    port: primaryPort(ctx),
    user: secrets.postgres.superuser,
    password: secrets.postgres.password,
    database,
    application_name: 'edupulse-db',
  };
}

async function upPostgres(ctx: StackContext, secrets: Secrets, steps: Steps): Promise<void> {
  const spec = clusterSpec(ctx);
  const { paths } = ctx;
  if (!existsSync(paths.dataDir)) {
    await initCluster(spec, {
      initDir: paths.initDir,
      superuser: secrets.postgres.superuser,
      password: secrets.postgres.password,
      checksums: ctx.settings.postgres.dataChecksums,
    });
    steps.add('postgres: initdb', 'done', `PostgreSQL ${ctx.pg.version} in ${paths.dataDir}`);
  }
  // The archive_command's script (rewritten only when it differs; the server runs it per segment).
  const written = (path: string, content: string) => existsSync(path) && readFileSync(path, 'utf8') === content;
  if (!written(paths.archiveScript, ARCHIVE_WAL_SCRIPT))
    writeFileAtomic(paths.archiveScript, ARCHIVE_WAL_SCRIPT, { mode: 0o755 });
  // Public keys only: the database host never holds the identity.
  const { recipients } = ctx.settings.backup.encryption;
  if (recipients.length && !written(paths.ageRecipients, recipientsFileContent(recipients)))
    writeFileAtomic(paths.ageRecipients, recipientsFileContent(recipients), { mode: 0o644 });
  const configChanged = configureCluster(spec, {
    params: localParameters(ctx),
    hba: localHba(),
    ident: localIdent(ctx),
  });
  if (await clusterRunning(spec)) {
    if (!configChanged) {
      steps.add('postgres', 'skipped', `already running on port ${primaryPort(ctx)}`);
      return;
    }
    await reloadCluster(spec);
    const pending = await withClient(localPgConfig(ctx, secrets, 'postgres'), async (c) =>
      (await c.query<{ name: string }>('SELECT name FROM pg_settings WHERE pending_restart')).rows.map((r) => r.name),
    );
    if (pending.length === 0) {
      steps.add('postgres: settings', 'done', 'changed settings reloaded');
      return;
    }
    await stopCluster(spec, 'fast');
    await startCluster(spec);
    steps.add('postgres: settings', 'done', `restarted to apply ${pending.join(', ')}`);
    return;
  }
  const crashed = postmasterPid(paths.dataDir) !== undefined;
  await startCluster(spec);
  steps.add(
    'postgres',
    'done',
    `${crashed ? 'recovered after an unclean stop and started' : 'started'} on port ${primaryPort(ctx)}`,
  );
}

async function upRedis(ctx: StackContext, secrets: Secrets, steps: Steps): Promise<void> {
  const spec = redisSpec(ctx, secrets.redis.password);
  const { changed, runtimeOnly } = configureRedis(spec);
  const running = redisPid(spec) !== undefined;
  if (running && !changed) {
    steps.add('redis', 'skipped', `already running on port ${ctx.settings.redis.port}`);
    return;
  }
  if (running && runtimeOnly) {
    // maxmemory, eviction policy, persistence: set on the running server, no restart; the config file keeps them.
    await applyRuntimeDirectives(spec, runtimeOnly);
    steps.add(
      'redis: settings',
      'done',
      `applied without a restart (CONFIG SET ${runtimeOnly.map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(', ')})`,
    );
    return;
  }
  if (running) await stopRedis(spec);
  await startRedis(spec);
  steps.add(
    'redis',
    'done',
    `${running ? 'restarted with new settings' : 'started'} on port ${ctx.settings.redis.port}`,
  );
}

/**
 * Both ports, before anything is created or started: a port another process
 * holds is bad input naming the port and, when knowable, the holder (a server
 * of ours already running on it is fine).
 */
async function checkPorts(ctx: StackContext, withRedis: boolean): Promise<void> {
  const ours = [
    {
      name: 'PostgreSQL',
      port: primaryPort(ctx),
      variable: 'EDUPULSE_PG_PORT',
      running: existsSync(ctx.paths.dataDir) && (await clusterRunning(clusterSpec(ctx))),
    },
    ...(withRedis
      ? [
          {
            name: 'Redis',
            port: ctx.settings.redis.port,
            variable: 'EDUPULSE_REDIS_PORT',
            running: redisPid({ pidFile: ctx.paths.redisPidFile }) !== undefined,
          },
        ]
      : []),
    // Each standby on the primary's port + i: a port already taken is bad input before anything is made.
    ...(await Promise.all(
      standbySpecs(ctx).map(async (s) => ({
        name: `PostgreSQL ${s.name}`,
        port: s.port,
        variable: 'EDUPULSE_PG_PORT (standbys use the ports after it)',
        running: (await clusterRunning(s)) || (await legacyStandbyRunning(ctx, s.node)),
      })),
    )),
    ...(ctx.settings.pooler.enabled
      ? [
          {
            name: 'PgBouncer',
            port: ctx.settings.pooler.port,
            variable: 'EDUPULSE_POOLER_PORT',
            running: !!poolerPid(ctx),
          },
        ]
      : []),
  ];
  for (const s of ours) {
    if (s.running || (await portFree(s.port))) continue;
    const holder = portHolder(s.port);
    throw badInput(
      `port ${s.port} for ${s.name} is already in use${holder ? ` by ${holder}` : ''}; nothing was started`,
      `stop what holds it, or choose another port with ${s.variable}`,
    );
  }
}

export async function up(ctx: StackContext, opts: { redis?: boolean } = {}): Promise<UpResult> {
  if (ctx.paths.primaryNode > ctx.settings.postgres.standbys)
    throw badInput(
      `${nodeName(ctx.paths.primaryNode)} is the primary since a failover, but EDUPULSE_PG_STANDBYS=${ctx.settings.postgres.standbys} declares only pg0..pg${ctx.settings.postgres.standbys}; nothing was changed`,
      `set EDUPULSE_PG_STANDBYS to at least ${ctx.paths.primaryNode}`,
    );
  await checkReachable(ctx);
  await checkPorts(ctx, opts.redis !== false);
  if (ctx.settings.backup.encryption.recipients.length && spawnSync('age', ['--version']).error)
    throw badInput(
      'EDUPULSE_BACKUP_AGE_RECIPIENTS is set but the age command is not installed',
      'apt-get install age (the archive script and the backup job encrypt with it)',
    );
  const created = stateDirs(ctx).filter((d) => !existsSync(d));
  for (const dir of stateDirs(ctx)) ensurePrivateDir(dir, ctx.as);
  const steps = new Steps(ctx);
  if (created.length) steps.add('state directory', 'done', ctx.paths.root);
  const { secrets, created: newSecrets } = loadOrCreateSecrets(ctx.paths.secretsFile, ctx.as);
  if (newSecrets) steps.add('secrets', 'done', `generated into ${ctx.paths.secretsFile} (0600)`);
  // A killed initdb leaves only its scratch directory: start that over.
  if (existsSync(ctx.paths.initDir)) rmSync(ctx.paths.initDir, { recursive: true, force: true });
  const pgWasRunning = existsSync(ctx.paths.dataDir) && (await clusterRunning(clusterSpec(ctx)));
  await upPostgres(ctx, secrets, steps);
  try {
    if (opts.redis !== false) await upRedis(ctx, secrets, steps);
  } catch (err) {
    // One server failed to start: what this run started goes down again, so a failed up leaves things as they were.
    if (!pgWasRunning) await stopCluster(clusterSpec(ctx), 'fast').catch(() => {});
    throw err;
  }
  for (const s of await applyDesiredState({
    connect: (database) => localPgConfig(ctx, secrets, database),
    database: ctx.settings.postgres.database,
    passwords: secretsFileStore(ctx.paths.secretsFile, ctx.as),
    lockTimeout: ctx.settings.migrations.lockTimeout,
    logger: ctx.logger,
  }))
    steps.add(s.name, s.status, s.detail);
  // Standbys last: they stream from the primary as the replicator login the desired state just declared
  // (its password is in the secrets file now).
  const current = readSecrets(ctx.paths.secretsFile)!;
  for (const s of await upStandbys(ctx, localPgConfig(ctx, current, 'postgres'), current))
    steps.add(s.name === 'replication' ? 'postgres: replication' : `postgres ${s.name}`, s.status, s.detail);
  if (ctx.settings.pooler.enabled) {
    const p = await upPooler(ctx, primaryPort(ctx));
    steps.add('pgbouncer', p.status, p.detail);
  }
  return { steps: steps.list, changed: steps.list.some((s) => s.status === 'done') };
}

export async function down(ctx: StackContext): Promise<Step[]> {
  const steps = new Steps(ctx);
  // Both are stopped even when one of them fails to stop; the first error is raised after.
  const errors: unknown[] = [];
  try {
    if (await downPooler(ctx)) steps.add('pgbouncer', 'done', 'stopped');
  } catch (err) {
    steps.add('pgbouncer', 'failed');
    errors.push(err);
  }
  try {
    for (const name of await downStandbys(ctx)) steps.add(`postgres ${name}`, 'done', 'stopped');
  } catch (err) {
    steps.add('postgres standbys', 'failed');
    errors.push(err);
  }
  try {
    const stopped = await stopCluster(clusterSpec(ctx), 'fast');
    steps.add('postgres', stopped ? 'done' : 'skipped', stopped ? 'stopped' : 'was not running');
  } catch (err) {
    steps.add('postgres', 'failed');
    errors.push(err);
  }
  try {
    const secrets = readSecrets(ctx.paths.secretsFile);
    const stopped = secrets ? await stopRedis(redisSpec(ctx, secrets.redis.password)) : false;
    steps.add('redis', stopped ? 'done' : 'skipped', stopped ? 'stopped' : 'was not running');
  } catch (err) {
    steps.add('redis', 'failed');
    errors.push(err);
  }
  if (errors.length) throw errors[0];
  return steps.list;
}
