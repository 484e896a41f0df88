// Named restore points (backup:mark): pg_create_restore_point on the live
// server, recorded in the repository (name, LSN, time, timeline) so a restore
// to a name can pick its backup, with drill canaries on either side.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { withClient, type PgConfig } from '../db.ts';
import { badInput } from '../errors.ts';
import { writeFileAtomic } from '../files.ts';
import type { LocalRepository } from '../backup/repository.ts';
import { LAYOUT } from '../backup/layout.ts';

export interface RestorePoint {
  name: string;
  lsn: string;
  time: string;
  timeline: number;
}

export const restorePointsFile = (repo: LocalRepository) => join(repo.root, LAYOUT.restorePoints);
const file = restorePointsFile;

export function readRestorePoints(repo: LocalRepository): RestorePoint[] {
  return existsSync(file(repo)) ? (JSON.parse(readFileSync(file(repo), 'utf8')) as RestorePoint[]) : [];
}

export async function writeCanary(
  admin: PgConfig,
  drillId: string,
  side: 'before' | 'after',
): Promise<{ id: string; committedAt: Date }> {
  return withClient(admin, async (c) => {
    const { rows } = await c.query(
      'INSERT INTO edupulse_meta.drill_canaries (drill_id, side) VALUES ($1, $2) RETURNING id::text, committed_at',
      [drillId, side],
    );
    return { id: rows[0].id, committedAt: rows[0].committed_at };
  });
}

export async function markRestorePoint(admin: PgConfig, repo: LocalRepository, name: string): Promise<RestorePoint> {
  if (!/^[\w.:-]{1,63}$/.test(name))
    throw badInput(`restore point name "${name}" is not usable`, 'use 1-63 letters, digits, _ . : -');
  const points = readRestorePoints(repo);
  if (points.some((p) => p.name === name))
    throw badInput(
      `a restore point named "${name}" exists already`,
      'names must be unique: recovery stops at the first one',
    );
  await writeCanary(admin, `mark:${name}`, 'before');
  const point = await withClient(admin, async (c) => {
    const { rows } = await c.query(
      `SELECT pg_create_restore_point($1)::text AS lsn, clock_timestamp() AS time,
      (SELECT timeline_id FROM pg_control_checkpoint()) AS timeline`,
      [name],
    );
    return { name, lsn: rows[0].lsn, time: rows[0].time.toISOString(), timeline: rows[0].timeline } as RestorePoint;
  });
  await writeCanary(admin, `mark:${name}`, 'after');
  writeFileAtomic(file(repo), JSON.stringify([...points, point], null, 2) + '\n', { mode: 0o600, owner: repo.owner });
  return point;
}
