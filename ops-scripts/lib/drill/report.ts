// The drill's report: a table for people and Prometheus textfile metrics
// (the record and the history an auditor reads: ./records.ts).
import type { BackupContext } from '../backup/context.ts';
import { writeMetricsFile } from '../metrics.ts';
import { lastPassingDrill } from './records.ts';
import type { DrillReport } from './drill.ts';

const s = (n?: number) => (n === undefined ? '-' : `${n.toFixed(2)}s`);

export function formatDrill(r: DrillReport): string {
  if (r.kind === 'failover') {
    return [
      `failover drill ${r.id}: ${r.passed ? 'PASSED' : 'FAILED'}`,
      `  ${r.target}`,
      ...r.checks.map((c) => `  ${c.status === 'passed' ? 'ok    ' : 'FAILED'} ${c.name}: ${c.detail}`),
      `  RTO ${s(r.rto.totalSeconds)} to the first write through the pooler: detect ${s(r.rto.detectSeconds)}, promote ${s(r.rto.promoteSeconds)}, repoint ${s(r.rto.repointSeconds)}`,
    ].join('\n');
  }
  const lines = [
    `drill ${r.id}: ${r.passed ? 'PASSED' : 'FAILED'}`,
    `  target        ${r.target || '-'}`,
    `  backup        ${r.backupId ?? '-'}`,
  ];
  for (const c of r.checks)
    lines.push(
      `  ${c.status === 'passed' ? 'ok    ' : c.status === 'skipped' ? 'n/a   ' : 'FAILED'} ${c.name}: ${c.detail}`,
    );
  lines.push(
    `  RTO ${s(r.rto.totalSeconds)}: choose ${s(r.rto.chooseSeconds)}, extract ${s(r.rto.extractSeconds)}, replay ${s(r.rto.replaySeconds)}` +
      ` (${r.replayedWalBytes === undefined ? '-' : `${(r.replayedWalBytes / 1048576).toFixed(1)} MB of WAL`}), promote ${s(r.rto.promoteSeconds)}, verify ${s(r.rto.verifySeconds)}`,
  );
  lines.push(
    `  RPO ${r.rpoSeconds === undefined ? '-' : `${r.rpoSeconds.toFixed(3)}s`} (target to last replayed commit)`,
  );
  if (r.kept) lines.push(`  kept running on 127.0.0.1:${r.kept.port}, data in ${r.kept.dataDir}`);
  return lines.join('\n');
}

/** The drill's metrics; the last success comes from the repository's drill records. */
export function writeDrillMetrics(ctx: BackupContext, r: DrillReport): string {
  const last = lastPassingDrill(ctx.repo);
  return writeMetricsFile(ctx.metricsDir, 'edupulse_drill.prom', [
    { name: 'edupulse_drill_last_run_success', value: r.passed ? 1 : 0 },
    ...(last !== undefined
      ? [{ name: 'edupulse_drill_last_success_timestamp_seconds' as const, value: last / 1000 }]
      : []),
    ...(r.passed
      ? [
          { name: 'edupulse_drill_rto_seconds' as const, value: Number(r.rto.totalSeconds.toFixed(3)) },
          { name: 'edupulse_drill_rpo_seconds' as const, value: Number((r.rpoSeconds ?? 0).toFixed(3)) },
        ]
      : []),
  ]);
}
