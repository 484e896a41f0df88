// npm run report -- [--out <file>]: the recovery report page.
import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { badInput } from './lib/errors.ts';
import { command, outcome } from './lib/cli.ts';
import { backupContext } from './lib/backup/context.ts';
import { writeFileAtomic } from './lib/files.ts';
import { renderReport } from './lib/report/render.ts';
import { reportData } from './lib/report/report.ts';
import { resolveStack } from './lib/stack-context.ts';

const usage = `Usage: edupulse-db report [--out <file>] [--json]

Writes a static HTML page (one file: no script, no network needed to view it)
rendered from the repository's records: the recoverable window on a timeline
(each base backup, the WAL coverage, what is not recoverable in red), backup
sizes and durations, drill RTO by phase and RPO over time, the last health
result (health --textfile records it), and the first command to restore to the
newest point. Default file: <state>/report.html. Prints the path.`;

/** The page goes to a file in a directory that exists; a directory given as the file is refused before anything is read or written. */
function checkOutFile(file: string): void {
  const parent = statSync(dirname(file), { throwIfNoEntry: false });
  if (!parent?.isDirectory()) {
    throw badInput(
      `--out ${file}: directory ${dirname(file)} does not exist`,
      'create it first, or name a file in an existing directory',
    );
  }
  if (statSync(file, { throwIfNoEntry: false })?.isDirectory()) {
    throw badInput(`--out ${file} is a directory`, `name the file, for example ${join(file, 'report.html')}`);
  }
}

await command({ name: 'report', usage, string: ['out'] }, async ({ args, logger }) => {
  const stack = await resolveStack({ logger });
  const file = resolve(args.out ?? `${stack.paths.root}/report.html`);
  checkOutFile(file);
  const t0 = performance.now();
  const html = renderReport(reportData(backupContext(stack), stack.paths));
  writeFileAtomic(file, html, { mode: 0o600 });
  const seconds = (performance.now() - t0) / 1000;
  return outcome(
    { file, bytes: Buffer.byteLength(html), seconds },
    (r) => `report written to ${r.file} (${r.bytes} bytes, ${r.seconds.toFixed(2)}s)`,
  );
});
