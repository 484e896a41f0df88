// npm run bench:report [-- <out.html>]: renders the report for a repository
// of 7 physical backups and 10 drills (records built here, the shape the
// jobs write) and prints the median render time of 20 and the page's size,
// against the targets (under 1 s, under 300 KB).
import { writeFileSync } from 'node:fs';
import type { ListedBackup } from '../ops-scripts/lib/backup/list.ts';
import type { DrillReport } from '../ops-scripts/lib/drill/drill.ts';
import { renderReport, type ReportData } from '../ops-scripts/lib/report/render.ts';

const day = 86_400_000;
const now = Date.parse('2026-11-25T06:00:00Z');
const backups: ListedBackup[] = Array.from({ length: 7 }, (_, i) => {
  const ended = new Date(now - (7 - i) * day).toISOString();
  return {
    format: 1,
    id: `2026112${i}T011500Z`,
    kind: 'physical',
    label: 'nightly',
    status: 'complete',
    startedAt: ended,
    finishedAt: ended,
    durationSeconds: 40 + i,
    server: { version: '15.14', major: 15, systemIdentifier: '1', walSegmentBytes: 16 << 20 },
    sizes: { rawBytes: 1e9, storedBytes: 2.4e8 + i * 1e7 },
    throughputMBps: 60,
    files: [],
    verification: { tool: 'pg_verifybackup', ok: true, seconds: 5 },
    // A gap on day 3: its window ends early.
    recoverable: { from: ended, to: new Date(now - (7 - i) * day + (i === 3 ? day / 3 : day - 60_000)).toISOString() },
  };
});
const drills: DrillReport[] = Array.from({ length: 10 }, (_, i) => ({
  id: `drill-${i}`,
  startedAt: new Date(now - ((10 - i) * day) / 1.5).toISOString(),
  target: 'time',
  backupId: backups[0]!.id,
  checks: [{ name: 'data exactness (canaries)', status: i === 6 ? 'failed' : 'passed', detail: '-' }],
  passed: i !== 6,
  rto: {
    totalSeconds: 30 + i,
    chooseSeconds: 1,
    extractSeconds: 12 + i,
    replaySeconds: 8,
    promoteSeconds: 1,
    verifySeconds: 8,
  },
  rpoSeconds: 0.2,
}));
const data: ReportData = {
  generatedAt: new Date(now).toISOString(),
  repository: '/var/lib/edupulse/repo',
  backups,
  unfinished: 0,
  drills,
};

const times: number[] = [];
let html = '';
for (let i = 0; i < 20; i++) {
  const t0 = performance.now();
  html = renderReport(data);
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
const ms = times[10]!;
const kb = Buffer.byteLength(html) / 1024;
console.log(
  `report, 7 backups and 10 drills: render ${ms.toFixed(2)} ms (target < 1000 ms: ${(1000 / ms).toFixed(0)}x under), ${kb.toFixed(1)} KB (target < 300 KB)`,
);
if (process.argv[2]) writeFileSync(process.argv[2], html);
