// The report page: one static HTML file (no script, no network, no CDN),
// rendered from the structured records (backup catalog with recoverable
// windows, drill records, the last health result): are we covered, when did
// we last prove a restore, how long would it take. Charts are inline SVG.
import type { ListedBackup } from '../backup/list.ts';
import type { DrillReport } from '../drill/drill.ts';
import { bytes } from '../format.ts';
import type { Check } from '../maintenance/health.ts';

export interface ReportData {
  generatedAt: string;
  repository: string;
  backups: ListedBackup[];
  unfinished: number;
  drills: DrillReport[];
  health?: { at: string; status: string; checks: Check[] };
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const W = 720;
const PHASES = ['chooseSeconds', 'extractSeconds', 'replaySeconds', 'promoteSeconds', 'verifySeconds'] as const;
const PHASE_COLORS = ['#8da0cb', '#66c2a5', '#fc8d62', '#e78ac3', '#a6d854'];

/** The recoverable window on a time axis: each physical backup's window green, what none covers red. */
function timeline(d: ReportData): string {
  const physical = d.backups.filter((b) => b.recoverable);
  if (!physical.length) return '<p class="bad">No physical backup: nothing is recoverable.</p>';
  const start = Math.min(...physical.map((b) => Date.parse(b.recoverable!.from)));
  const end = Math.max(Date.parse(d.generatedAt), ...physical.map((b) => Date.parse(b.recoverable!.to)));
  const x = (t: number) => 10 + ((t - start) / Math.max(1, end - start)) * (W - 20);
  const windows = physical
    .map((b) => [Date.parse(b.recoverable!.from), Date.parse(b.recoverable!.to)] as const)
    .sort((a, b) => a[0] - b[0]);
  const gaps: Array<[number, number]> = [];
  let covered = start;
  for (const [from, to] of windows) {
    if (from > covered) gaps.push([covered, from]);
    covered = Math.max(covered, to);
  }
  if (end > covered) gaps.push([covered, end]);
  const bar = (cls: string, from: number, to: number, title: string) =>
    `<rect class="${cls}" x="${x(from).toFixed(1)}" y="20" width="${Math.max(1, x(to) - x(from)).toFixed(1)}" height="24"><title>${esc(title)}</title></rect>`;
  return `<svg class="chart" viewBox="0 0 ${W} 70" role="img" aria-label="recoverable window">
${windows.map(([f, t]) => bar('window', f, t, `recoverable ${new Date(f).toISOString()} .. ${new Date(t).toISOString()}`)).join('\n')}
${gaps.map(([f, t]) => bar('gap', f, t, `not recoverable ${new Date(f).toISOString()} .. ${new Date(t).toISOString()}`)).join('\n')}
${physical.map((b) => `<circle class="backup" cx="${x(Date.parse(b.recoverable!.from)).toFixed(1)}" cy="14" r="4"><title>backup ${esc(b.id)}</title></circle>`).join('\n')}
<text x="10" y="62">${esc(new Date(start).toISOString().slice(0, 16))}</text><text x="${W - 10}" y="62" text-anchor="end">${esc(new Date(end).toISOString().slice(0, 16))}</text>
</svg>`;
}

/** Bars over time, one per item, stacked by part; each bar titled. */
function bars(
  items: Array<{ label: string; parts: number[]; title: string }>,
  colors: string[],
  unit: (n: number) => string,
): string {
  if (!items.length) return '<p>None yet.</p>';
  const max = Math.max(1e-9, ...items.map((i) => i.parts.reduce((a, b) => a + b, 0)));
  const bw = Math.min(60, (W - 20) / items.length - 4);
  const body = items
    .map((it, n) => {
      let y = 150;
      const x = 10 + n * (bw + 4);
      const rects = it.parts.map((p, k) => {
        const h = (p / max) * 130;
        y -= h;
        return `<rect class="bar" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${bw.toFixed(1)}" height="${h.toFixed(1)}" fill="${colors[k % colors.length]}"><title>${esc(it.title)}</title></rect>`;
      });
      return rects.join('');
    })
    .join('\n');
  return `<svg class="chart" viewBox="0 0 ${W} 170" role="img"><text x="10" y="12">max ${esc(unit(max))}</text>
${body}</svg>`;
}

function table(head: string[], rows: string[][]): string {
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>
${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n')}</tbody></table>`;
}

export function renderReport(d: ReportData): string {
  const physical = d.backups.filter((b) => b.kind === 'physical');
  const newest = physical[physical.length - 1];
  const lastDrill = d.drills[d.drills.length - 1];
  const lastPass = [...d.drills].reverse().find((r) => r.passed);
  const secs = (n?: number) => (n === undefined ? '-' : `${n.toFixed(1)} s`);
  const restoreCommand = newest?.recoverable
    ? `edupulse-db restore --target-time ${newest.recoverable.to} --to /var/lib/edupulse/restored --start`
    : 'no physical backup to restore from';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>EduPulse data layer: recovery report</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:760px;padding:12px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
.summary{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:8px}
.card{border:1px solid #ccc;border-radius:6px;padding:8px}.card b{display:block;font-size:1.2em}
.ok{color:#1a7f37}.bad{color:#c62828}.chart{width:100%;height:auto;display:block}
.window{fill:#43a047}.gap{fill:#e53935}.backup{fill:#1e3a8a}
table{border-collapse:collapse;width:100%;font-size:.9em;display:block;overflow-x:auto}
td,th{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;white-space:nowrap}
code{background:#f3f3f3;padding:4px;display:block;overflow-x:auto;white-space:pre}
</style></head><body>
<h1>EduPulse data layer: recovery report</h1>
<p>Generated ${esc(d.generatedAt)} from the repository ${esc(d.repository)}.</p>
<div class="summary">
<div class="card" id="coverage">Newest restorable point<b class="${newest ? 'ok' : 'bad'}">${esc(newest?.recoverable?.to ?? 'none')}</b></div>
<div class="card" id="last-drill">Last proven restore<b class="${lastPass ? 'ok' : 'bad'}">${esc(lastPass?.startedAt ?? 'never')}</b></div>
<div class="card" id="rto">Restore takes (last passing drill)<b>${esc(secs(lastPass?.rto.totalSeconds))}</b></div>
<div class="card" id="health">Health<b class="${d.health?.status === 'ok' ? 'ok' : 'bad'}">${esc(d.health ? `${d.health.status} (${d.health.at})` : 'no result recorded')}</b></div>
</div>
<h2>Recoverable window</h2>
${timeline(d)}
<p>Green: a restore can reach any moment in it (a base backup and the WAL archived after it without a gap). Red: not recoverable (before or between backups, a gap, or WAL not archived yet).</p>
<h2>Backups</h2>
${bars(
  d.backups.map((b) => ({
    label: b.id,
    parts: [b.sizes.storedBytes],
    title: `${b.kind} ${b.id}: ${bytes(b.sizes.storedBytes)} in ${b.durationSeconds.toFixed(1)} s`,
  })),
  ['#1e88e5'],
  (n) => bytes(n),
)}
${table(
  ['backup', 'kind', 'finished', 'stored', 'duration', 'verified', 'recoverable window'],
  d.backups.map((b) => [
    b.id,
    b.kind,
    b.finishedAt,
    bytes(b.sizes.storedBytes),
    `${b.durationSeconds.toFixed(1)} s`,
    b.verification.ok ? 'yes' : 'NO',
    b.recoverable ? `${b.recoverable.from} .. ${b.recoverable.to}` : '-',
  ]),
)}
${d.unfinished ? `<p class="bad">${d.unfinished} unfinished backup director${d.unfinished > 1 ? 'ies' : 'y'} (not backups).</p>` : ''}
<h2>Recovery drills: RTO by phase</h2>
<p>${PHASES.map((p, i) => `<span style="color:${PHASE_COLORS[i]}">&#9632;</span> ${p.replace('Seconds', '')}`).join(' ')}</p>
${bars(
  d.drills.map((r) => ({
    label: r.id,
    parts: PHASES.map((p) => r.rto[p] ?? 0),
    title: `${r.id} ${r.passed ? 'passed' : 'FAILED'}: RTO ${secs(r.rto.totalSeconds)}, RPO ${r.rpoSeconds?.toFixed(3) ?? '-'} s`,
  })),
  PHASE_COLORS,
  (n) => `${n.toFixed(1)} s`,
)}
<h2>Recovery drills: RPO (target to last replayed commit)</h2>
${bars(
  d.drills.map((r) => ({
    label: r.id,
    parts: [r.rpoSeconds ?? 0],
    title: `${r.id}: RPO ${r.rpoSeconds?.toFixed(3) ?? '-'} s`,
  })),
  ['#6a1b9a'],
  (n) => `${n.toFixed(3)} s`,
)}
${table(
  ['drill', 'target', 'result', 'RTO', 'RPO'],
  d.drills.map((r) => [
    r.startedAt,
    r.target,
    r.passed ? 'passed' : 'FAILED',
    secs(r.rto.totalSeconds),
    r.rpoSeconds === undefined ? '-' : `${r.rpoSeconds.toFixed(3)} s`,
  ]),
)}
${
  lastDrill && !lastDrill.passed
    ? `<p class="bad">The latest drill failed: ${esc(
        lastDrill.checks
          .filter((c) => c.status === 'failed')
          .map((c) => `${c.name}: ${c.detail}`)
          .join('; '),
      )}</p>`
    : ''
}
<h2>Health</h2>
${
  d.health
    ? table(
        ['component', 'check', 'level', 'detail'],
        d.health.checks.map((c) => [c.component, c.name, c.level, c.detail]),
      )
    : '<p>No health result recorded (run <code>edupulse-db health --textfile</code>).</p>'
}
<h2>To restore to the newest point</h2>
<code>${esc(restoreCommand)}</code>
<p>Then follow the README's restore procedure (check the data, then swap deliberately).</p>
</body></html>
`;
}
