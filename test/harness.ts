// Throwaway servers for integration tests: a PostgreSQL cluster (and Redis
// when asked) in a temp dir on free ports, brought up by the same code as the
// local stack, and always stopped and removed, also when a test fails or the
// process exits early.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterSpec, resolveStack, type StackContext } from '../ops-scripts/lib/stack-context.ts';
import { down, localPgConfig, up } from '../ops-scripts/lib/local-stack.ts';
import { silentLogger } from '../ops-scripts/lib/logger.ts';
import { readSecrets, type Secrets } from '../ops-scripts/lib/secrets.ts';
import { ensurePrivateDir } from '../ops-scripts/lib/files.ts';
import { serviceUser } from '../ops-scripts/lib/os-user.ts';
import { redisPid } from '../ops-scripts/lib/redis.ts';
import { poolerPid } from '../ops-scripts/lib/pooler.ts';
import { nodeDataDir } from '../ops-scripts/lib/topology.ts';
import type { PgConfig } from '../ops-scripts/lib/db.ts';
import { migratorConfig } from '../migrations/engine/migrate.ts';
import { declarations } from '../roles/declarations.ts';

import { freePort } from '../ops-scripts/lib/ports.ts';

export { freePort };

/** A fresh state directory the service user can reach, removed by `cleanup`. */
export function tempStateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'edupulse-test-'));
  ensurePrivateDir(dir, serviceUser());
  return dir;
}

/** The environment that points every job at a test stack. */
export async function testEnv(stateDir: string): Promise<Record<string, string>> {
  return {
    EDUPULSE_STATE_DIR: stateDir,
    EDUPULSE_PG_PORT: String(await freePort()),
    EDUPULSE_REDIS_PORT: String(await freePort()),
  };
}

/** uvu swallows an error thrown by a before hook; this prints it first. */
export const logged = (fn: () => Promise<void>) => async () => {
  try {
    await fn();
  } catch (err) {
    console.error('hook failed:', err);
    throw err;
  }
};

export interface TestStack {
  ctx: StackContext;
  env: Record<string, string>;
  secrets: Secrets;
  /** Superuser connection to the application database. */
  pg: PgConfig;
  /** A declared login's connection, with its password as the secrets file holds it now (after a rotation too). */
  login(role: string, database?: string): PgConfig;
  /** The migrator's connection, as migrations run (SET ROLE to the owner, lock_timeout). */
  owner(opts?: { lockTimeout?: string }): PgConfig;
  stop(): Promise<void>;
}

const live = new Set<StackContext>();

// Last resort when a test process dies without running its after hooks.
process.on('exit', () => {
  for (const ctx of live) {
    const spec = clusterSpec(ctx);
    // Every node (pg0..pg3: the primary and any standbys, whichever is primary now).
    for (let i = 0; i <= 3; i++) {
      const dataDir = nodeDataDir(ctx.paths.root, i);
      if (!existsSync(dataDir)) continue;
      spawnSync(
        spec.pg.bin('pg_ctl'),
        ['stop', '-D', dataDir, '-m', 'immediate', '-s'],
        spec.as ? { uid: spec.as.uid, gid: spec.as.gid, stdio: 'ignore' } : { stdio: 'ignore' },
      );
    }
    for (const pid of [redisPid({ pidFile: ctx.paths.redisPidFile }), poolerPid(ctx)])
      if (pid)
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
    rmSync(ctx.paths.root, { recursive: true, force: true });
  }
});

export async function startTestStack(opts: { redis?: boolean; env?: Record<string, string> } = {}): Promise<TestStack> {
  const root = tempStateDir();
  const env = { ...(await testEnv(root)), ...opts.env };
  const ctx = await resolveStack({ env: { ...process.env, ...env }, logger: silentLogger });
  live.add(ctx);
  try {
    await up(ctx, { redis: opts.redis ?? false });
  } catch (err) {
    await stopStack(ctx);
    throw err;
  }
  const secrets = readSecrets(ctx.paths.secretsFile)!;
  const pg = localPgConfig(ctx, secrets, ctx.settings.postgres.database);
  const password = (role: string) => {
    const p = readSecrets(ctx.paths.secretsFile)!.roles[role];
    if (p === undefined) throw new Error(`no password for ${role} in the test stack's secrets`);
    return p;
  };
  return {
    ctx,
    env,
    secrets,
    pg,
    login: (role, database = pg.database) => ({ ...pg, user: role, password: password(role), database }),
    owner: (opts = {}) => migratorConfig(pg, password(declarations.migrator), opts),
    stop: () => stopStack(ctx),
  };
}

async function stopStack(ctx: StackContext): Promise<void> {
  try {
    await down(ctx);
  } finally {
    rmSync(ctx.paths.root, { recursive: true, force: true });
    live.delete(ctx);
  }
}
