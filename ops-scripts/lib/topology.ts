// Which of the local stack's PostgreSQL servers is the primary. The servers
// are nodes pg0..pgN (N = EDUPULSE_PG_STANDBYS): pg0 is the one `up` first
// made (its data directory is pg/data), pg<i> lives in pg/pg<i>, and node i
// listens on EDUPULSE_PG_PORT + i. Which node is primary is a fact of the
// state directory, not of the settings: it changes only by `failover`, which
// records it here (pg/topology.json) with what happened. Every job reaches the
// primary through statePaths(), so after a failover they follow it.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { declarations } from '../../roles/declarations.ts';
import { writeFileAtomic } from './files.ts';
import type { OsUser } from './run.ts';

// Pure naming, read by the Pulumi program's containers too (infra/replication.ts): one convention for both appliers.
export const nodeName = (i: number) => `pg${i}`;
/** Node i's physical replication slot on whichever node is primary. */
export const slotName = (i: number) => `edupulse_${nodeName(i)}`;
/**
 * What makes node i a standby of the primary at host:port, beyond the primary's own parameters: its name
 * (also its application_name as the primary sees it), where it streams from as the replication login (the
 * password in `passfile`, never in the configuration) and its slot.
 */
export function standbyReplicationParameters(
  i: number,
  primary: { host: string; port: number },
  passfile: string,
): Record<string, string> {
  const conninfo = [
    `host=${primary.host}`,
    `port=${primary.port}`,
    `user=${declarations.replicator}`,
    `passfile=${passfile}`,
    `application_name=${nodeName(i)}`,
    'sslmode=disable',
  ].join(' ');
  return { cluster_name: nodeName(i), primary_conninfo: conninfo, primary_slot_name: slotName(i) };
}

/** synchronous_standby_names for these standbys: any one of them confirms a commit ('' is asynchronous). */
export const syncStandbyNames = (names: string[]) => (names.length ? `ANY 1 (${names.join(', ')})` : '');
export const NODE_NAME_RE = /^pg([0-9])$/;

/** Node i's data directory: pg/data for pg0 (where `up` has always made it), pg/pg<i> for the others. */
export const nodeDataDir = (root: string, i: number) => join(root, 'pg', i === 0 ? 'data' : nodeName(i));
/** Node i's server log. */
export const nodeLogFile = (root: string, i: number) =>
  join(root, 'logs', i === 0 ? 'postgres.log' : `${nodeName(i)}.log`);

/** One promotion, as `failover` recorded it. */
export interface FailoverRecord {
  at: string;
  from: string;
  to: string;
  /** switchover: the old primary was running and was stopped cleanly first; failover: it was not reachable. */
  kind: 'switchover' | 'failover';
  forced: boolean;
  /** The new primary's replay lag behind the old one when it was promoted (bytes; null when the old one was down). */
  lagBytes: number | null;
  timeline: number;
  /** What became of the old primary: rewound and streaming again, or left to be rebuilt. */
  oldPrimary: 'rejoined' | 'needs-rebuild';
  detail?: string;
}

export interface Topology {
  /** The node that is primary. */
  primary: number;
  history: FailoverRecord[];
}

export const topologyFile = (root: string) => join(root, 'pg', 'topology.json');

/** pg0 is the primary until a failover says otherwise. */
export function readTopology(root: string): Topology {
  const f = topologyFile(root);
  if (!existsSync(f)) return { primary: 0, history: [] };
  const t = JSON.parse(readFileSync(f, 'utf8')) as Topology;
  if (!Number.isInteger(t.primary) || t.primary < 0) throw new Error(`${f}: no valid primary node`);
  return t;
}

export function writeTopology(root: string, t: Topology, owner?: OsUser): void {
  writeFileAtomic(topologyFile(root), `${JSON.stringify(t, null, 2)}\n`, { mode: 0o600, ...(owner ? { owner } : {}) });
}

/** The standbys' names: every node of pg0..pgN but the primary. */
export function standbyNodes(standbys: number, primary: number): number[] {
  return Array.from({ length: Math.max(standbys, primary) + 1 }, (_, i) => i).filter((i) => i !== primary);
}
