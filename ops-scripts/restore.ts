// npm run restore -- --target-time T --to <dir> [...]
import { command, outcome } from './lib/cli.ts';
import { backupContext } from './lib/backup/context.ts';
import { badInput } from './lib/errors.ts';
import { bytes } from './lib/format.ts';
import { archiveNow } from './lib/restore/archive-now.ts';
import { openCatalog } from './lib/restore/catalog.ts';
import { phasedProgress } from './lib/progress.ts';
import { liveDirs } from './lib/state.ts';
import { restore } from './lib/restore/restore.ts';
import { parseTarget } from './lib/restore/target.ts';
import { readSecrets } from './lib/secrets.ts';
import { resolveStack } from './lib/stack-context.ts';

const usage = `Usage: edupulse-db restore (--target-time T | --target-lsn L | --target-name N | --target immediate)
                          --to <dir> [--backup <id>] [--port P] [--start] [--pause] [--json]

Point-in-time restore into a new data directory: picks the newest physical
backup that ended at or before the target (or --backup, refused if it ended
after it), extracts it into <dir> (which must not exist or be empty: exit 3;
never the live data directory), sets restore_command to the repository's
wal/, the recovery target (timeline latest) and recovery.signal, archiving
off, TCP only on a port. With --start, starts it and waits until recovery
ended and the server was promoted (--pause: until it paused at the target,
to inspect first). Without --start, the archived WAL replay needs is copied
into <dir>/pg_wal (counted in the room check), so the cluster started later
does not depend on the repository still holding it. Uses the binaries of the
backup's major version.
On a terminal it shows each phase's progress (bytes extracted; WAL copied;
WAL replayed of the WAL to replay); none when output is not a terminal or with --json.

  --target-time T    ISO 8601 with a zone (2026-11-24T21:30:00Z); no zone is refused.
                     Fractions are kept to the microsecond (commit times are).
                     When nothing committed after T in the archived WAL (a quiet
                     night, "just now" on an idle database), recovery stops at
                     the last commit at or before T (found with pg_waldump), the
                     same state; a T newer than the archive, or with nothing
                     after it there, has the live server switch its WAL
                     segment and waits for the archiver first
  --target-lsn L     e.g. 0/3000060; one past the archived WAL (the current LSN)
                     has the live server archive its WAL first, as above
  --target-name N    a restore point made by backup:mark (one not archived yet has
                     the live server archive its WAL first)
  --target immediate the end of the backup
  --from-remote      restore from the object store (also the default when the
                     local repository holds no physical backup and a store is set)`;

await command(
  {
    name: 'restore',
    usage,
    boolean: ['start', 'pause', 'from-remote'],
    string: ['target-time', 'target-lsn', 'target-name', 'target', 'to', 'backup', 'port'],
  },
  async ({ args, json, logger }) => {
    const target = parseTarget({
      time: args['target-time'],
      lsn: args['target-lsn'],
      name: args['target-name'],
      target: args.target,
    });
    if (!args.to) throw badInput('needs --to <dir>', 'a new or empty directory for the restored cluster');
    const port = args.port === undefined ? undefined : Number(args.port);
    if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535))
      throw badInput(`--port ${args.port} is not a port`);
    const stack = await resolveStack({ logger });
    const secrets = readSecrets(stack.paths.secretsFile);
    if (!secrets) throw badInput('no secrets file; run `npm run up` first');
    const ctx = backupContext(stack);
    const { catalog, close } = await openCatalog(ctx, stack.paths.root, Boolean(args['from-remote']));
    const progress = phasedProgress();
    let r;
    try {
      r = await restore(ctx, {
        target,
        to: String(args.to),
        backupId: args.backup as string | undefined,
        port,
        start: Boolean(args.start),
        pause: Boolean(args.pause),
        liveDataDir: stack.paths.dataDir,
        protectedDirs: liveDirs(stack.paths),
        superuser: { user: secrets.postgres.superuser, password: secrets.postgres.password },
        catalog,
        archiveNow: archiveNow(ctx, catalog),
        logDir: stack.paths.logDir,
        onProgress: json ? undefined : progress.report,
      });
    } finally {
      progress.end();
      close();
    }
    const { spec: _spec, ...report } = r;
    return outcome(report, () =>
      [
        `restored backup ${r.backup.id} (ended ${r.backup.endedAt}) into ${r.dataDir}, target ${r.target}`,
        r.promoted
          ? `  running on 127.0.0.1:${r.port}, promoted; last replayed commit ${r.lastReplayedCommit ?? '-'}`
          : r.paused
            ? `  running on 127.0.0.1:${r.port}, paused at the target: inspect, then SELECT pg_wal_replay_resume() to promote`
            : `  not started: pg_ctl start -D ${r.dataDir} (as the cluster's OS user) replays to the target` +
              (r.walCopied
                ? `\n  the WAL it replays is in its pg_wal (${r.walCopied.files} files, ${bytes(r.walCopied.bytes)} copied): it does not need the repository's`
                : ''),
        ...(r.quiet ? [`  recovered to ${r.recoveredTo}: ${r.quiet.note}`] : []),
      ].join('\n'),
    );
  },
);
