// Drill records: one JSON file per drill in the repository (drills/<id>.json),
// the facts every report is rendered from. drill-history.md is rendered from
// them (never parsed back); health and the metrics read the records.
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { LAYOUT } from '../backup/layout.ts';
import type { LocalRepository } from '../backup/repository.ts';
import { ensurePrivateDir, writeFileAtomic } from '../files.ts';
import type { DrillReport } from './drill.ts';

/** The history as it was before records existed, kept beside the rendered one. */
export const LEGACY_HISTORY = 'drill-history-before-records.md';

const dir = (repo: LocalRepository) => join(repo.root, LAYOUT.drills);

/** Every drill recorded in the repository, oldest first. */
export function drillRecords(repo: LocalRepository): DrillReport[] {
  const d = dir(repo);
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(d, f), 'utf8')) as DrillReport)
    .sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

/** When the newest passing drill started, in ms since the epoch. */
export function lastPassingDrill(repo: LocalRepository): number | undefined {
  // A failover drill proves promotion, not that backups restore.
  const passing = drillRecords(repo).filter((r) => r.passed && r.kind !== 'failover');
  return passing.length ? Date.parse(passing[passing.length - 1]!.startedAt) : undefined;
}

const secs = (n?: number) => (n === undefined ? '-' : `${n.toFixed(2)}s`);

/** The Markdown table an auditor reads, one row per drill. */
export function renderHistory(records: readonly DrillReport[], legacy = false): string {
  const rows = records.map((r) => {
    const failedChecks = r.checks
      .filter((c) => c.status !== 'passed' && c.status !== 'skipped')
      .map((c) => c.name)
      .join(', ');
    return (
      `| ${r.startedAt} | ${r.target || '-'} | ${r.backupId ?? '-'} | ${secs(r.rto.totalSeconds)} | ` +
      `${r.rpoSeconds === undefined ? '-' : `${r.rpoSeconds.toFixed(3)}s`} | ${r.passed ? 'passed' : 'FAILED'} | ` +
      `${failedChecks ? `failed: ${failedChecks}` : `${r.checks.length} checks passed or not applicable`} |`
    );
  });
  return [
    '# Recovery drill history',
    '',
    `Rendered by \`edupulse-db drill\` from ${LAYOUT.drills}/*.json (one record per drill); do not edit.`,
    ...(legacy ? ['', `Drills from before the records: ${LEGACY_HISTORY}.`] : []),
    '',
    '| date | target | backup | RTO | RPO | result | checks |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

/** Records a drill and renders the history again; returns the history's path. */
export function recordDrill(repo: LocalRepository, report: DrillReport): string {
  const history = join(repo.root, LAYOUT.drillHistory);
  // A history written before records existed is kept as it was, not overwritten.
  if (!existsSync(dir(repo)) && existsSync(history)) renameSync(history, join(repo.root, LEGACY_HISTORY));
  ensurePrivateDir(dir(repo), repo.owner);
  writeFileAtomic(join(dir(repo), `${report.id}.json`), JSON.stringify(report, null, 2) + '\n', {
    mode: 0o600,
    owner: repo.owner,
  });
  writeFileAtomic(history, renderHistory(drillRecords(repo), existsSync(join(repo.root, LEGACY_HISTORY))), {
    mode: 0o600,
    owner: repo.owner,
  });
  return history;
}
