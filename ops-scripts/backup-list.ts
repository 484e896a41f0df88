// npm run backup:list: every backup with kind, age, size, status and, for
// physical backups, the recoverable window.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { command } from './lib/cli.ts';
import { backupContext } from './lib/backup/context.ts';
import { archiveStatus } from './lib/backup/verify.ts';
import { isOffloaded } from './lib/backup/offload.ts';
import { remoteSettings } from './lib/backup/remote.ts';
import { age, bytes, table } from './lib/format.ts';
import { resolveStack } from './lib/stack-context.ts';

const usage = `Usage: edupulse-db backup:list [--json]

Lists every complete backup (a directory without backup.json is not one): id,
kind, age, stored size, status, verification, and for physical backups the
recoverable window, from the end of the backup to the newest WAL segment in
the archive reachable without a gap.`;

await command({ name: 'backup:list', usage }, async ({ json, logger, out }) => {
  const ctx = backupContext(await resolveStack({ logger }));
  const remote = remoteSettings();
  const rows = ctx.repo.list().map((r) => {
    let windowEnd: string | undefined;
    if (r.kind === 'physical') {
      const newest = archiveStatus(ctx, r).newest;
      if (newest) windowEnd = statSync(join(ctx.repo.walDir, newest.name)).mtime.toISOString();
    }
    const from = r.physical?.endedAt ?? r.finishedAt;
    return { ...r, recoverable: r.physical ? { from, to: windowEnd && windowEnd > from ? windowEnd : from } : undefined,
      offloaded: remote ? isOffloaded(ctx, r) : undefined };
  });
  const partials = ctx.repo.partials();
  if (json) { out(JSON.stringify({ backups: rows, unfinished: partials }, null, 2)); return; }
  if (!rows.length) out('no backups');
  else out(table([['ID', 'KIND', 'AGE', 'SIZE', 'STATUS', 'VERIFIED', 'RECOVERABLE WINDOW'],
    ...rows.map((r) => [r.id, r.kind, age(r.finishedAt), bytes(r.sizes.storedBytes), r.offloaded === false ? 'complete, NOT OFFLOADED' : r.status,
      r.verification.ok ? r.verification.tool : 'FAILED',
      r.recoverable ? `${r.recoverable.from} .. ${r.recoverable.to}` : '-'])]));
  if (partials.length) out(`(${partials.length} unfinished director${partials.length > 1 ? 'ies' : 'y'}, not backups; the next backup run removes them)`);
});
