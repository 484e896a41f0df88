// PgBouncer in front of the local stack (EDUPULSE_POOLER=on): the
// application's connection string is the pooler's port, whichever node is
// primary. Clients authenticate with their own SCRAM secrets, which PgBouncer
// looks up with auth_query through pgbouncer.get_auth as the pooler login
// (peer authentication on the local socket: no password for it anywhere);
// it then logs in to the server with the client's SCRAM proof. No userlist
// holds a password. With standbys, a second database entry
// (<database>_reporting) sends reporting reads to a standby. A failover
// rewrites the [databases] section and reloads (SIGHUP): clients stay
// connected to the same port and their next transaction reaches the new primary.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pgbouncerAuthFile, pgbouncerHba, pgbouncerIni } from '../../infra/pgbouncer.ts';
import { failed } from './errors.ts';
import { ensurePrivateDir, writeFileAtomic } from './files.ts';
import { processAlive, processCommand } from './process.ts';
import { run, tail } from './run.ts';
import { osOwnerName, type StackContext } from './stack-context.ts';
import { standbySpecs } from './standby.ts';

export const poolerDir = (ctx: StackContext) => join(ctx.paths.root, 'pooler');
const files = (ctx: StackContext) => ({
  ini: join(poolerDir(ctx), 'pgbouncer.ini'),
  hba: join(poolerDir(ctx), 'pg_hba.conf'),
  users: join(poolerDir(ctx), 'userlist.txt'),
  pid: join(poolerDir(ctx), 'pgbouncer.pid'),
  log: join(ctx.paths.logDir, 'pgbouncer.log'),
});

/** The database entry reporting reads go to (a standby's), when there are standbys. */
export const reportingDatabase = (database: string) => `${database}_reporting`;

export function findPgbouncer(): string | undefined {
  return ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'].find((p) => existsSync(p));
}

/** The [databases] entries: the application's database on the primary, reporting on the first standby. */
export function poolerDatabases(ctx: StackContext, primaryPort: number, readPort?: number): Record<string, string> {
  const db = ctx.settings.postgres.database;
  const entry = (port: number) => `host=${ctx.paths.socketDir} port=${port} dbname=${db}`;
  return { [db]: entry(primaryPort), ...(readPort ? { [reportingDatabase(db)]: entry(readPort) } : {}) };
}

export function renderPoolerIni(ctx: StackContext, databases: Record<string, string>): string {
  const f = files(ctx);
  return pgbouncerIni(ctx.settings.pooler, {
    databases,
    listenAddr: '127.0.0.1',
    port: ctx.settings.pooler.port,
    // The admin console for the servers' OS user only (peer on the 0700 socket directory).
    unixSocketDir: ctx.paths.socketDir,
    hbaFile: f.hba,
    authFile: f.users,
    adminUser: osOwnerName(ctx),
    pidfile: f.pid,
    logfile: f.log,
  });
}

const renderPoolerHba = (ctx: StackContext) => pgbouncerHba(osOwnerName(ctx), ['127.0.0.1/32', '::1/128']);

export function poolerPid(ctx: StackContext): number | undefined {
  const f = files(ctx).pid;
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && processAlive(pid) && /pgbouncer/.test(processCommand(pid) ?? '')
    ? pid
    : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Writes the configuration for `primaryPort` (and the first standby for reporting) and starts PgBouncer, or
 * reloads it when its configuration changed (SIGHUP: clients keep their connections). Returns what it did.
 */
export async function upPooler(
  ctx: StackContext,
  primaryPort: number,
): Promise<{ status: 'done' | 'skipped'; detail: string }> {
  const bin = findPgbouncer();
  if (!bin) throw failed('EDUPULSE_POOLER=on but pgbouncer is not installed', 'apt-get install pgbouncer');
  ensurePrivateDir(poolerDir(ctx), ctx.as);
  const f = files(ctx);
  const read = standbySpecs(ctx)[0]?.port;
  const ini = renderPoolerIni(ctx, poolerDatabases(ctx, primaryPort, read));
  const same = (path: string, content: string) => existsSync(path) && readFileSync(path, 'utf8') === content;
  const users = pgbouncerAuthFile(osOwnerName(ctx));
  const changed = !same(f.ini, ini) || !same(f.hba, renderPoolerHba(ctx)) || !same(f.users, users);
  const owner = ctx.as ? { owner: ctx.as } : {};
  if (changed) {
    writeFileAtomic(f.hba, renderPoolerHba(ctx), { mode: 0o600, ...owner });
    writeFileAtomic(f.users, users, { mode: 0o600, ...owner });
    writeFileAtomic(f.ini, ini, { mode: 0o600, ...owner });
  }
  const pid = poolerPid(ctx);
  if (pid) {
    if (!changed) return { status: 'skipped', detail: `already running on port ${ctx.settings.pooler.port}` };
    process.kill(pid, 'SIGHUP');
    return { status: 'done', detail: `reloaded (primary on port ${primaryPort})` };
  }
  rmSync(f.pid, { force: true });
  const r = await run(bin, ['-d', '-q', f.ini], { as: ctx.as, nothrow: true, logger: ctx.logger });
  const deadline = Date.now() + 10_000;
  while (!poolerPid(ctx)) {
    if (r.code !== 0 || Date.now() > deadline) {
      const log = existsSync(f.log) ? tail(readFileSync(f.log, 'utf8')) : '';
      throw failed(`pgbouncer did not start on port ${ctx.settings.pooler.port}\n${r.stderr}${log}`, `see ${f.log}`);
    }
    await sleep(50);
  }
  return { status: 'done', detail: `started on port ${ctx.settings.pooler.port}, pooling port ${primaryPort}` };
}

export async function downPooler(ctx: StackContext, timeoutMs = 15_000): Promise<boolean> {
  const pid = poolerPid(ctx);
  if (!pid) return false;
  // SIGINT: safe shutdown (waits for clients' transactions to end, then exits); SIGTERM after a bound.
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid)) {
    if (Date.now() > deadline) process.kill(pid, 'SIGTERM');
    await sleep(50);
  }
  return true;
}

export interface PoolStatus {
  database: string;
  user: string;
  clientsActive: number;
  clientsWaiting: number;
  serversActive: number;
  serversIdle: number;
  maxWaitSeconds: number;
}

/** SHOW POOLS on the admin console, as the servers' OS user on the socket. */
export async function poolerPools(ctx: StackContext): Promise<PoolStatus[]> {
  const r = await run(
    ctx.pg.bin('psql'),
    [
      '-X',
      '-w',
      '-A',
      '-F',
      '\t',
      '-h',
      ctx.paths.socketDir,
      '-p',
      String(ctx.settings.pooler.port),
      '-U',
      osOwnerName(ctx),
      '-d',
      'pgbouncer',
      '-c',
      'SHOW POOLS',
    ],
    { as: ctx.as, logger: ctx.logger, timeoutMs: 10_000 },
  );
  const [head, ...rows] = r.stdout.trim().split('\n');
  const cols = head!.split('\t');
  return rows
    .filter((l) => l.includes('\t'))
    .map((l) => Object.fromEntries(l.split('\t').map((v, i) => [cols[i], v])))
    .filter((x) => x.database !== 'pgbouncer')
    .map((x) => ({
      database: x.database!,
      user: x.user!,
      clientsActive: Number(x.cl_active),
      clientsWaiting: Number(x.cl_waiting),
      serversActive: Number(x.sv_active),
      serversIdle: Number(x.sv_idle),
      maxWaitSeconds: Number(x.maxwait),
    }));
}
