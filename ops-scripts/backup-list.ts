// npm run backup:list: every backup with kind, age, size, status and, for
// physical backups, the recoverable window.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { command } from './lib/cli.ts';
import { backupContext } from './lib/backup/context.ts';
import { archiveStatus } from './lib/backup/verify.ts';
import { isOffloaded } from './lib/backup/offload.ts';
import { RemoteStore, remoteSettings } from './lib/backup/remote.ts';
import { readRemote } from './lib/backup/remote-catalog.ts';
import { badInput } from './lib/errors.ts';
import { age, bytes, table } from './lib/format.ts';
import { resolveStack } from './lib/stack-context.ts';

const usage = `Usage: edupulse-db backup:list [--remote] [--json]

Lists every complete backup (a directory without backup.json is not one): id,
kind, age, stored size, status, verification, and for physical backups the
recoverable window, from the end of the backup to the newest WAL segment in
the archive reachable without a gap. With a store configured, a backup not yet
uploaded shows NOT OFFLOADED; --remote lists the store's own catalog.`;

await command({ name: 'backup:list', usage, boolean: ['remote'] }, async ({ args, json, logger, out }) => {
  const ctx = backupContext(await resolveStack({ logger }));
  const remote = remoteSettings();
  if (args.remote) {
    if (!remote) throw badInput('--remote needs EDUPULSE_REPO_MODE=copy or remote and EDUPULSE_S3_*');
    const store = new RemoteStore(remote);
    try {
      const { records } = await readRemote(store);
      if (json) out(JSON.stringify({ backups: records }, null, 2));
      else out(records.length ? table([['ID', 'KIND', 'AGE', 'SIZE', 'WHERE'], ...records.map((r) => [r.id, r.kind, age(r.finishedAt), bytes(r.sizes.storedBytes), `${remote.bucket}/${remote.prefix}`])]) : 'no backups in the store');
    } finally { store.close(); }
    return;
  }
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
