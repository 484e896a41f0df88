// npm run drill -- [--target-time T] [--keep] [--backup <id>]
import { join } from 'node:path';
import { command, outcome } from './lib/cli.ts';
import { backupContext } from './lib/backup/context.ts';
import { drill } from './lib/drill/drill.ts';
import { checkFailoverDrill, failoverDrill } from './lib/drill/failover-drill.ts';
import { logicalDrill } from './lib/drill/logical-drill.ts';
import { syncStoreWal } from './lib/restore/archive-now.ts';
import { openCatalog } from './lib/restore/catalog.ts';
import { pickBackup } from './lib/restore/select.ts';
import { keptDrills, stopScratch } from './lib/restore/scratch-clusters.ts';
import { phasedProgress } from './lib/progress.ts';
import { statePaths } from './lib/state.ts';
import { formatDrill, writeDrillMetrics } from './lib/drill/report.ts';
import { recordDrill } from './lib/drill/records.ts';
import { withClient } from './lib/db.ts';
import { badInput, describeError, failed } from './lib/errors.ts';
import { haltIfInterrupted, onInterrupt } from './lib/interrupt.ts';
import { isoOf, parseTargetTime } from './lib/restore/target.ts';
import { readSecrets } from './lib/secrets.ts';
import { resolveStack } from './lib/stack-context.ts';

const usage = `Usage: edupulse-db drill [--target-time T] [--backup <id>] [--keep] [--json]
       edupulse-db drill --logical [<id>] [--json]
       edupulse-db drill --cleanup [--json]
       edupulse-db drill --failover [--json]

Restores the newest suitable physical backup into a scratch cluster on a free
port at a target time, waits for promotion, then verifies: the target was
reached (last replayed commit at or before it; the gap is the achieved RPO);
the data is exact (canary rows committed before the target present, after it
absent); every index passes pg_amcheck; roles and grants match the
declarations. Reports the RTO broken down (choose, extract, replay, promote,
verify), records it in the repository (drills/<id>.json, and drill-history.md
rendered from the records), writes Prometheus
metrics, and removes the scratch cluster (--keep leaves it up). On a
terminal it shows the restore's progress (extract, replay); not with --json.
Without --target-time the drill places its own target between two canaries
it writes just now. Exit 0 only when every check passed, 1 otherwise.

--logical restores the newest (or given) pg_dump into a scratch database on
the live server and compares every table's row count and fingerprint with
those taken in the dump's own snapshot; the scratch database is dropped.

--cleanup stops and removes every scratch cluster an earlier --keep left
(status lists them; edupulse-db stop <dir> [--remove] does one).

--failover needs standbys and the pooler (EDUPULSE_PG_STANDBYS, EDUPULSE_POOLER=on):
under a write load through the pooler it kills the primary (immediate stop),
promotes a standby (as \`failover\` does, the old primary rewound to a standby),
and checks that every acknowledged commit is on the new primary (synchronous
replication; asynchronous reports how many were lost and the lag at the
failure), that the pooler's port serves reads and writes again, and that the
roles audit is clean there. RTO: detect, promote, repoint, first write. The
stack stays failed over (\`failover\` switches back).`;

await command(
  {
    name: 'drill',
    usage,
    boolean: ['keep', 'logical', 'from-remote', 'cleanup', 'failover'],
    string: ['target-time', 'backup'],
    positionals: { max: 1, name: 'backup id (with --logical)' },
    conflicts: [
      ['logical', 'target-time'],
      ['logical', 'keep'],
      ['logical', 'from-remote'],
      ['cleanup', 'keep'],
      ['cleanup', 'logical'],
      ['cleanup', 'target-time'],
      ['cleanup', 'backup'],
      ...(['logical', 'cleanup', 'keep', 'target-time', 'backup', 'from-remote'] as const).map(
        (f) => ['failover', f] as [string, string],
      ),
    ],
  },
  async ({ args, json, logger }) => {
    if (args.cleanup) {
      // The scratch clusters earlier drills kept (--keep): stopped as their OS user and removed.
      const paths = statePaths();
      const kept = await keptDrills(join(paths.root, 'drills'));
      for (const k of kept) await stopScratch(k.dataDir, { liveDataDir: paths.dataDir, remove: true, logger });
      return outcome({ removed: kept.map((k) => k.dataDir) }, () =>
        kept.length ? kept.map((k) => `removed ${k.dataDir}`).join('\n') : 'no kept drill clusters',
      );
    }
    if (args.failover) {
      if (args._.length) throw badInput(`unexpected argument "${args._[0]}"`, 'drill --failover takes none');
      const stack = await resolveStack({ logger });
      const secrets = readSecrets(stack.paths.secretsFile);
      if (!secrets) throw badInput('no secrets file; run `npm run up` first');
      checkFailoverDrill(stack);
      const report = await failoverDrill(stack, secrets);
      await haltIfInterrupted();
      const ctx = backupContext(stack);
      ctx.repo.ensureLayout();
      const history = recordDrill(ctx.repo, report);
      return outcome(
        { ...report, history },
        () => `${formatDrill(report)}\n  history: ${history}`,
        report.passed ? 0 : 1,
      );
    }
    if (args._.length && !args.logical)
      throw badInput(
        `unexpected argument "${args._[0]}"`,
        'choose a backup with --backup <id>; a bare id goes only with --logical',
      );
    const targetTime = args['target-time'] ? parseTargetTime(String(args['target-time'])) : undefined;
    if (targetTime && targetTime.time > new Date()) throw badInput(`the target ${isoOf(targetTime)} is in the future`);
    const stack = await resolveStack({ logger });
    const secrets = readSecrets(stack.paths.secretsFile);
    if (!secrets) throw badInput('no secrets file; run `npm run up` first');
    const ctx = backupContext(stack);
    // A drill writes its canaries on the live server and has it archive up to now (a logical one restores into a
    // scratch database there). Unreachable, it fails before it starts: that is not a failed recovery, so none is recorded.
    const live = await withClient(ctx.admin, (c) => c.query('SELECT 1')).then(
      () => undefined,
      (err: unknown) => err,
    );
    if (live) throw failed(`no drill ran and none is recorded: it needs the live server, and ${describeError(live)}`);
    ctx.repo.ensureLayout();
    const opened = args.logical ? undefined : await openCatalog(ctx, stack.paths.root, Boolean(args['from-remote']));
    // A mistyped --backup, or a target before every backup, is bad input: refused before the drill starts, so no
    // failed drill is recorded (history, metrics) for it.
    if (opened && (args.backup || targetTime)) {
      try {
        pickBackup(opened.catalog, { kind: 'time', ...(targetTime ?? { time: new Date() }) }, args.backup);
      } catch (err) {
        opened.close();
        throw err;
      }
    }
    const forget = onInterrupt(() => opened?.close());
    const progress = phasedProgress();
    const report = await (
      args.logical
        ? logicalDrill(ctx, {
            backupId: args._[0] as string | undefined,
            superuser: { user: secrets.postgres.superuser, password: secrets.postgres.password },
          })
        : drill(ctx, {
            catalog: opened?.catalog,
            // From the store, the WAL up to the target must be there too: push it, then read the store's catalog again.
            afterArchive: opened ? () => syncStoreWal(ctx, opened.catalog) : undefined,
            targetTime,
            backupId: args.backup as string | undefined,
            keep: Boolean(args.keep),
            onProgress: json ? undefined : progress.report,
            scratchRoot: join(stack.paths.root, 'drills'),
            liveDataDir: stack.paths.dataDir,
            logDir: stack.paths.logDir,
            superuser: { user: secrets.postgres.superuser, password: secrets.postgres.password },
            database: stack.settings.postgres.database,
          })
    ).finally(() => {
      forget();
      progress.end();
      opened?.close();
    });
    // An interrupted drill records nothing: it proved nothing either way.
    await haltIfInterrupted();
    const history = recordDrill(ctx.repo, report);
    writeDrillMetrics(ctx, report);
    return outcome(
      { ...report, history },
      () => `${formatDrill(report)}\n  history: ${history}`,
      report.passed ? 0 : 1,
    );
  },
);
