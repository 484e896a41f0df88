// npm run backup:verify -- <id>|--all
import { command, outcome } from './lib/cli.ts';
import { backupContext } from './lib/backup/context.ts';
import { verifyBackup } from './lib/backup/verify.ts';
import { badInput } from './lib/errors.ts';
import { RemoteStore, remoteSettings } from './lib/backup/remote.ts';
import { readRemote, verifyRemote } from './lib/backup/remote-catalog.ts';
import { resolveStack } from './lib/stack-context.ts';

const usage = `Usage: edupulse-db backup:verify <id>|--all [--deep | --remote] [--json]

Checks each stored file against its SHA-256 sum in backup.json, the
backup_manifest against its own checksum, and that the WAL archive holds
every segment from the base backup's start to the newest one (following
timeline switches). --deep also runs pg_verifybackup on an extracted copy.
--remote checks the store's copy: every object present with the recorded size
and the ETag it had when uploaded, and the store's WAL without a gap.
Exit 0 when all pass, 1 when any fails (naming the file or segment).`;

/** The results as the command prints them; exit 1 when any failed. */
function verified(
  results: Array<{ ok: boolean; id: string; kind: string; newestWal?: string; problems: string[] }>,
  where: string,
) {
  const line = (r: (typeof results)[number]) =>
    `${r.ok ? 'ok    ' : 'FAILED'} ${r.id} (${r.kind}${where})${r.newestWal ? `, WAL through ${r.newestWal}` : ''}` +
    r.problems.map((p) => `\n       ${p}`).join('');
  return outcome({ results }, () => results.map(line).join('\n'), results.every((r) => r.ok) ? 0 : 1);
}

await command(
  { name: 'backup:verify', usage, boolean: ['all', 'deep', 'remote'], positionals: { max: 1, name: 'backup id' } },
  async ({ args, logger }) => {
    const ctx = backupContext(await resolveStack({ logger }));
    const id = args._[0] as string | undefined;
    if (!id && !args.all) throw badInput('needs a backup id or --all', 'see backup:list for ids');
    if (args.remote) {
      const settings = remoteSettings();
      if (!settings) throw badInput('--remote needs EDUPULSE_REPO_MODE=copy or remote and EDUPULSE_S3_*');
      const store = new RemoteStore(settings);
      try {
        const listing = await readRemote(store);
        const records = args.all ? listing.records : listing.records.filter((r) => r.id === String(id));
        if (!records.length) throw badInput(id ? `no backup with id ${id} in the store` : 'the store holds no backups');
        const results: Array<Awaited<ReturnType<typeof verifyRemote>>> = [];
        for (const r of records) results.push(await verifyRemote(store, r, listing));
        return verified(results, ', store');
      } finally {
        store.close();
      }
    }
    const records = args.all ? ctx.repo.list() : ctx.repo.list().filter((r) => r.id === String(id));
    if (!records.length)
      throw badInput(id ? `no complete backup with id ${id}` : 'the repository holds no backups', 'see backup:list');
    const results: Array<Awaited<ReturnType<typeof verifyBackup>>> = [];
    for (const r of records) results.push(await verifyBackup(ctx, r, { deep: Boolean(args.deep) }));
    return verified(results, '');
  },
);
