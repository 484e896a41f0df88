// The local stack's state directory: the cluster, the backup repository,
// secrets and logs, in one place (default `.edupulse/` in the checkout).
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAYOUT } from './backup/layout.ts';
import { settingsFromEnv } from './settings.ts';
import { nodeDataDir, nodeLogFile, readTopology } from './topology.ts';

/** Where the running modules are: the checkout (run by tsx) or its compiled copy in dist/. */
export const CODE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The package: the same as CODE_ROOT from source, its parent from dist/. */
export const PROJECT_ROOT = basename(CODE_ROOT) === 'dist' ? dirname(CODE_ROOT) : CODE_ROOT;

export interface StatePaths {
  root: string;
  /** The primary's data directory (pg/data until a failover makes another node primary; see topology.ts). */
  dataDir: string;
  /** Which node (pg0..pgN) is the primary: it listens on EDUPULSE_PG_PORT + this. */
  primaryNode: number;
  /** A fresh initdb goes here first and is renamed into place: a half-made cluster is never `dataDir`. */
  initDir: string;
  socketDir: string;
  logDir: string;
  pgLog: string;
  redisDir: string;
  redisConf: string;
  redisPidFile: string;
  redisLog: string;
  secretsFile: string;
  repoDir: string;
  walArchiveDir: string;
  /** The archive_command's script (infra/wal-archive.ts), written by up. */
  archiveScript: string;
  /** The age recipients the archive script encrypts WAL to, when encryption at rest is on. */
  ageRecipients: string;
  /** Prometheus textfile collector directory. */
  metricsDir: string;
}

export function statePaths(env: Readonly<Record<string, string | undefined>> = process.env): StatePaths {
  const host = settingsFromEnv(env).host;
  const root = resolve(host.stateDir ?? join(PROJECT_ROOT, '.edupulse'));
  const repoDir = resolve(host.repoDir ?? join(root, 'repo'));
  const primaryNode = readTopology(root).primary;
  return {
    root,
    dataDir: nodeDataDir(root, primaryNode),
    primaryNode,
    initDir: join(root, 'pg', 'data.init'),
    socketDir: join(root, 'run'),
    logDir: join(root, 'logs'),
    pgLog: nodeLogFile(root, primaryNode),
    redisDir: join(root, 'redis'),
    redisConf: join(root, 'redis', 'redis.conf'),
    redisPidFile: join(root, 'redis', 'redis.pid'),
    redisLog: join(root, 'logs', 'redis.log'),
    secretsFile: join(root, 'secrets.json'),
    repoDir,
    walArchiveDir: join(repoDir, LAYOUT.wal),
    archiveScript: join(root, 'pg', 'archive-wal.sh'),
    ageRecipients: join(root, 'pg', 'age-recipients'),
    metricsDir: resolve(host.metricsDir ?? join(root, 'metrics')),
  };
}

/** The same paths with the primary read again from the topology (after a failover changed it). */
export function withCurrentPrimary(p: StatePaths): StatePaths {
  const primaryNode = readTopology(p.root).primary;
  return { ...p, primaryNode, dataDir: nodeDataDir(p.root, primaryNode), pgLog: nodeLogFile(p.root, primaryNode) };
}

/** The major version a data directory was made with (its PG_VERSION file). */
export function dataDirMajor(dataDir: string): number | undefined {
  const f = join(dataDir, 'PG_VERSION');
  return existsSync(f) ? Number(readFileSync(f, 'utf8').trim()) : undefined;
}

/** The directories a restore must never write into or around, by what they are. */
export function liveDirs(p: StatePaths): Record<string, string> {
  return {
    'the backup repository': p.repoDir,
    'the WAL archive': p.walArchiveDir,
    "the cluster's socket directory": p.socketDir,
    'the logs directory': p.logDir,
    "Redis's directory": p.redisDir,
    'the metrics directory': p.metricsDir,
  };
}
