// Gathering the report's records: the backup catalog with recoverable
// windows, the drill records, the last recorded health result.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BackupContext } from '../backup/context.ts';
import { listBackups } from '../backup/list.ts';
import { drillRecords } from '../drill/records.ts';
import type { StatePaths } from '../state.ts';
import type { ReportData } from './render.ts';

/** Where `health --textfile` keeps its last result. */
export const healthRecordPath = (paths: StatePaths) => join(paths.root, 'health.json');

export function reportData(ctx: BackupContext, paths: StatePaths, now = new Date()): ReportData {
  const { backups, unfinished } = listBackups(ctx, false);
  const health = existsSync(healthRecordPath(paths))
    ? JSON.parse(readFileSync(healthRecordPath(paths), 'utf8'))
    : undefined;
  return {
    generatedAt: now.toISOString(),
    repository: ctx.repo.root,
    backups,
    unfinished: unfinished.length,
    drills: drillRecords(ctx.repo),
    health,
  };
}
