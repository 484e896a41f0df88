// Which of the local stack's PostgreSQL servers is the primary. The servers
// are nodes pg0..pgN (N = EDUPULSE_PG_STANDBYS): pg0 is the one `up` first
// made (its data directory is pg/data), pg<i> lives in pg/pg<i>, and node i
// listens on EDUPULSE_PG_PORT + i. Which node is primary is a fact of the
// state directory, not of the settings: it changes only by `failover`, which
// records it here (pg/topology.json) with what happened. Every job reaches the
// primary through statePaths(), so after a failover they follow it.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './files.ts';
import type { OsUser } from './run.ts';

export const nodeName = (i: number) => `pg${i}`;
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
