// The drill's report: a table for people, the Markdown history an auditor
// can read (appended in the repository), and Prometheus textfile metrics.
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../files.ts';
import type { BackupContext } from '../backup/context.ts';
import type { DrillReport } from './drill.ts';

const s = (n?: number) => (n === undefined ? '-' : `${n.toFixed(2)}s`);

export function formatDrill(r: DrillReport): string {
  const lines = [`drill ${r.id}: ${r.passed ? 'PASSED' : 'FAILED'}`, `  target        ${r.target || '-'}`, `  backup        ${r.backupId ?? '-'}`];
  for (const c of r.checks) lines.push(`  ${c.status === 'passed' ? 'ok    ' : 'FAILED'} ${c.name}: ${c.detail}`);
  lines.push(`  RTO ${s(r.rto.totalSeconds)}: choose ${s(r.rto.chooseSeconds)}, extract ${s(r.rto.extractSeconds)}, replay ${s(r.rto.replaySeconds)}` +
    ` (${r.replayedWalBytes === undefined ? '-' : `${(r.replayedWalBytes / 1048576).toFixed(1)} MB of WAL`}), promote ${s(r.rto.promoteSeconds)}, verify ${s(r.rto.verifySeconds)}`);
  lines.push(`  RPO ${r.rpoSeconds === undefined ? '-' : `${r.rpoSeconds.toFixed(3)}s`} (target to last replayed commit)`);
  if (r.kept) lines.push(`  kept running on 127.0.0.1:${r.kept.port}, data in ${r.kept.dataDir}`);
  return lines.join('\n');
}

export function appendHistory(ctx: BackupContext, r: DrillReport): string {
  const file = join(ctx.repo.root, 'drill-history.md');
  if (!existsSync(file)) {
    writeFileAtomic(file, '# Recovery drill history\n\nWritten by `edupulse-db drill`; one line per drill.\n\n' +
      '| date | target | backup | RTO | RPO | result | checks |\n|---|---|---|---|---|---|---|\n', { mode: 0o600, owner: ctx.repo.owner });
  }
  const failedChecks = r.checks.filter((c) => c.status !== 'passed').map((c) => c.name).join(', ');
  appendFileSync(file, `| ${r.startedAt} | ${r.target || '-'} | ${r.backupId ?? '-'} | ${s(r.rto.totalSeconds)} | ` +
    `${r.rpoSeconds === undefined ? '-' : `${r.rpoSeconds.toFixed(3)}s`} | ${r.passed ? 'passed' : 'FAILED'} | ${failedChecks ? `failed: ${failedChecks}` : `${r.checks.length} passed`} |\n`);
  return file;
}

export function writeDrillMetrics(ctx: BackupContext, r: DrillReport, previousSuccess?: number): string {
  mkdirSync(ctx.metricsDir, { recursive: true, mode: 0o755 });
  const lines = [
    '# HELP edupulse_drill_last_run_success 1 if the latest recovery drill passed every check.',
    '# TYPE edupulse_drill_last_run_success gauge', `edupulse_drill_last_run_success ${r.passed ? 1 : 0}`,
  ];
  const last = r.passed ? Date.parse(r.startedAt) / 1000 : previousSuccess;
  if (last !== undefined) lines.push('# HELP edupulse_drill_last_success_timestamp_seconds When the latest passing drill ran.',
    '# TYPE edupulse_drill_last_success_timestamp_seconds gauge', `edupulse_drill_last_success_timestamp_seconds ${last}`);
  if (r.passed) {
    lines.push('# HELP edupulse_drill_rto_seconds Time from the start of the latest passing drill to a verified server.',
      '# TYPE edupulse_drill_rto_seconds gauge', `edupulse_drill_rto_seconds ${r.rto.totalSeconds.toFixed(3)}`,
      '# HELP edupulse_drill_rpo_seconds Gap between the target and the last replayed commit.',
      '# TYPE edupulse_drill_rpo_seconds gauge', `edupulse_drill_rpo_seconds ${(r.rpoSeconds ?? 0).toFixed(3)}`);
  }
  const file = join(ctx.metricsDir, 'edupulse_drill.prom');
  writeFileAtomic(file, lines.join('\n') + '\n', { mode: 0o644 });
  return file;
}
