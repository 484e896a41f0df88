// npm run backup -- --type physical|logical
import { command, outcome } from './lib/cli.ts';
import { backupContext } from './lib/backup/context.ts';
import { runBackup, type BackupJobOptions } from './lib/backup/job.ts';
import { bytes } from './lib/format.ts';
import { canIncremental, INCREMENTAL_MIN_MAJOR } from './lib/backup/incremental.ts';
import { progressBar, type Progress } from './lib/progress.ts';
import { resolveStack } from './lib/stack-context.ts';
import { pickBackupStandby } from './lib/standby.ts';
import { badInput } from './lib/errors.ts';

const usage = `Usage: edupulse-db backup --type physical|logical [options] [--json]

physical: pg_basebackup as the backup login, tar format, compressed, WAL
  streamed into the backup, a manifest with SHA-256 checksums; marked complete
  (backup.json) only after it matched its manifest, checked as a stream
  (every file's size and SHA-256, the manifest's checksum, the WAL parsed by
  pg_waldump) without an extracted copy; backup:verify --deep runs
  pg_verifybackup on one.
logical: pg_dump -Fc of the database, checked with pg_restore --list.
Then retention and Prometheus textfile metrics. One backup job at a time per
repository (exit 3 naming the running one).

  --type physical|logical      what to take (default physical)
  --compression C              server-zstd:level=1,workers=2 (default),
                               server-zstd:1, server-zstd, server-lz4,
                               client-gzip:1, client-gzip, client-lz4, none
  --checkpoint fast|spread     (default fast)
  --label TEXT                 a label kept in backup.json
  --max-rate R                 throttle the transfer (e.g. 32k, 10M per second)
  --from-standby                physical: read the backup from a standby (the first
                               streaming one) to keep the load off the primary;
                               also EDUPULSE_BACKUP_FROM_STANDBY=on. Restore and
                               drills use it like any other backup
  --standby pgN                with --from-standby: that standby
  --incremental                physical: only the blocks changed since the newest
                               physical backup (PostgreSQL 17+, summarize_wal);
                               on 15/16 a full backup is taken and the output says so
  --keep-physical N            retention (default from EDUPULSE_BACKUP_KEEP_PHYSICAL, 7)
  --keep-logical M             retention (default from EDUPULSE_BACKUP_KEEP_LOGICAL, 14)`;

const intFlag = (v: unknown, fallback: number) => (v === undefined ? fallback : Number(v));

await command(
  {
    name: 'backup',
    usage,
    string: ['type', 'compression', 'checkpoint', 'label', 'max-rate', 'keep-physical', 'keep-logical', 'standby'],
    boolean: ['incremental', 'from-standby'],
  },
  async ({ args, logger }) => {
    const stack = await resolveStack({ logger });
    // Which standby, checked before anything is taken: none declared or none streaming is refused, nothing made.
    if (args.standby !== undefined && !args['from-standby'])
      throw badInput('--standby goes with --from-standby', `use --from-standby --standby ${args.standby}`);
    const fromStandby =
      (args['from-standby'] || stack.settings.backup.fromStandby) && (args.type ?? 'physical') === 'physical'
        ? await pickBackupStandby(stack, args.standby as string | undefined)
        : undefined;
    const opts: BackupJobOptions = {
      type: (args.type ?? 'physical') as BackupJobOptions['type'],
      compression: args.compression as string | undefined,
      checkpoint: args.checkpoint as BackupJobOptions['checkpoint'],
      label: args.label as string | undefined,
      maxRate: args['max-rate'] as string | undefined,
      incremental: Boolean(args.incremental),
      ...(fromStandby ? { fromStandby } : {}),
      keep: {
        physical: intFlag(args['keep-physical'], stack.settings.backup.keepPhysical),
        logical: intFlag(args['keep-logical'], stack.settings.backup.keepLogical),
      },
    };
    let bar: Progress | undefined;
    opts.onProgress = (done, total) => {
      bar ??= progressBar(total, 'bytes');
      bar.set(done);
    };
    const result = await runBackup(backupContext(stack), opts);
    bar?.done();
    const r = result.record;
    return outcome(
      result,
      () =>
        [
          `backup ${r.id} (${r.kind}) complete: ${bytes(r.sizes.rawBytes)} read, ${bytes(r.sizes.storedBytes)} stored, ` +
            `${r.durationSeconds.toFixed(1)}s, ${r.throughputMBps.toFixed(1)} MB/s; ${r.verification.tool}: ok`,
          ...(r.physical
            ? [`  WAL ${r.physical.startLsn} .. ${r.physical.stopLsn} on timeline ${r.physical.timeline} (included)`]
            : []),
          ...(r.physical?.incremental ? [`  incremental on top of ${r.physical.incremental.parent}`] : []),
          ...(r.physical?.fromStandby
            ? [`  read from standby ${r.physical.fromStandby.name} (port ${r.physical.fromStandby.port})`]
            : []),
          ...(opts.incremental && r.physical && !r.physical.incremental
            ? [
                canIncremental(r.server.major)
                  ? '  full backup: there was no physical backup of this cluster to build an incremental on'
                  : `  full backup: PostgreSQL ${r.server.major} has no incremental backups (${INCREMENTAL_MIN_MAJOR}+)`,
              ]
            : []),
          ...(result.cleaned.length ? [`  cleaned unfinished: ${result.cleaned.join(', ')}`] : []),
          ...(result.pruned.deferred
            ? [`  retention deferred to the next run: the repository is being read by ${result.pruned.deferred}`]
            : []),
          ...(result.pruned.removed.length
            ? [`  retention removed: ${result.pruned.removed.map((x) => `${x.kind}/${x.id}`).join(', ')}`]
            : []),
          ...(result.pruned.walRemoved.length
            ? [`  retention removed ${result.pruned.walRemoved.length} WAL files no kept backup needs`]
            : []),
          ...(result.offload
            ? [
                result.offload.ok
                  ? `  offloaded to the object store: ${result.offload.offloaded.join(', ') || 'nothing new'}; WAL pushed: ${result.offload.wal?.pushed.length ?? 0}` +
                    (result.offload.retentionDeferred
                      ? `\n  the store's retention deferred to the next run: it is being read by ${result.offload.retentionDeferred}`
                      : '')
                  : `  NOT OFFLOADED: ${result.offload.error}\n  the backup is complete locally; the next run uploads it`,
              ]
            : []),
          ...(r.checksumFailures?.length
            ? [
                `  PAGE CHECKSUM FAILURES (the same pages are damaged on the server; the backup holds them as read):`,
                ...r.checksumFailures.map(
                  (f) => `    ${f.relation ?? '(relation unknown)'}: ${f.file} block ${f.block}`,
                ),
                '  restore the damaged relation from an older backup or a dump, or see the README on checksum failures',
              ]
            : []),
          `  metrics: ${result.metricsFile}`,
        ].join('\n'),
      (result.offload && !result.offload.ok) || r.checksumFailures?.length ? 1 : 0,
    );
  },
);
