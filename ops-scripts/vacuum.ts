// npm run vacuum: plan from the server's statistics, then vacuum/analyze what needs it.
import { command, outcome, timeoutFlag } from './lib/cli.ts';
import { connections } from './lib/connection.ts';
import { badInput } from './lib/errors.ts';
import { table } from './lib/format.ts';
import { writeMetricsFile, type Sample } from './lib/metrics.ts';
import { runVacuum, type VacuumReport } from './lib/maintenance/vacuum-run.ts';
import { settingsFromEnv } from './lib/settings.ts';
import { statePaths } from './lib/state.ts';
import { migratorTarget } from './lib/migrate-target.ts';
import { reconcile, type ReconcileStep } from '../views/engine/index.ts';

const usage = `Usage: edupulse-db vacuum [--dry-run] [--max-duration S] [--cost-delay MS] [--lock-timeout 5s]
                         [--statement-timeout 1h] [--full <table> [--force]] [--json]

Plans from the server's statistics: per table (TOAST included) its effective
autovacuum thresholds (global settings overridden by its reloptions), dead
tuples, inserts since vacuum, modifications since analyze, and transaction-id
and multixact age against the freeze limits; decides VACUUM (ANALYZE), ANALYZE,
VACUUM (FREEZE) near wraparound, or nothing, with the reason. First checks the
xmin horizon and names what holds it back (pid, age, application, start).
Runs one table at a time with SKIP_LOCKED (a locked table is skipped, not
waited on), lock_timeout and statement_timeout; --max-duration stops starting
new tables once spent. Never VACUUM FULL unless --full <table>; refused (exit 3)
above EDUPULSE_VACUUM_FULL_MAX_MB (1024) unless --force. One run at a time.
Before planning, keeps the declared partitions (views/partitions.ts: the
months ahead made, any past the retention retired, as the owner role, as
\`apply\` does) and moves the attendance window (the counts behind
student_attendance_concerns) to today.

  --dry-run          print the plan only`;

function seconds(raw: unknown): number | undefined {
  if (raw === undefined) return undefined;
  const m = /^(\d+)(s|m|h)?$/.exec(String(raw));
  if (!m) throw badInput(`--max-duration ${raw} is not a duration`, 'use seconds, or e.g. 10m or 1h');
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'] ?? 1);
}

function samples(r: VacuumReport): Sample[] {
  const count = (s: string) => r.tables.filter((t) => t.status === s).length;
  return [
    { name: 'edupulse_vacuum_last_run_timestamp_seconds', value: Date.now() / 1000 },
    ...(['done', 'skipped', 'failed'] as const).map((status) => ({
      name: 'edupulse_vacuum_tables' as const,
      labels: { status },
      value: count(status),
    })),
    { name: 'edupulse_vacuum_duration_seconds', value: Number(r.seconds.toFixed(3)) },
    { name: 'edupulse_vacuum_xmin_horizon_blocked', value: r.horizon.blocked ? 1 : 0 },
  ];
}

await command(
  {
    name: 'vacuum',
    usage,
    boolean: ['dry-run', 'force'],
    string: ['max-duration', 'cost-delay', 'lock-timeout', 'statement-timeout', 'full'],
  },
  async ({ args }) => {
    const settings = settingsFromEnv(process.env);
    const costDelay = args['cost-delay'] === undefined ? undefined : Number(args['cost-delay']);
    if (costDelay !== undefined && (!Number.isFinite(costDelay) || costDelay < 0 || costDelay > 100))
      throw badInput(`--cost-delay ${args['cost-delay']} must be 0-100 ms`);
    for (const f of ['lock-timeout', 'statement-timeout']) timeoutFlag(args, f);
    const maxDurationSeconds = seconds(args['max-duration']);
    if (args.force && !args.full) throw badInput('--force only goes with --full <table>');
    // A table name, optionally schema-qualified; anything else never reaches the server.
    if (args.full !== undefined && !/^([A-Za-z_][A-Za-z0-9_$]*\.)?[A-Za-z_][A-Za-z0-9_$]*$/.test(args.full)) {
      throw badInput(
        `--full ${args.full} is not a table name`,
        'name one table, for example students or public.students',
      );
    }
    // The months keep coming without a deploy: the daily job makes them (its own lock_timeout applies).
    let partitions: ReconcileStep[] = [];
    if (!args.full) {
      let owner;
      try {
        owner = migratorTarget();
      } catch (err) {
        partitions = [
          { action: 'partitions', status: 'skipped', detail: `${(err as Error).message}; \`apply\` keeps them` },
        ];
      }
      if (owner)
        partitions = await reconcile(owner, {
          partitionsOnly: true,
          dryRun: Boolean(args['dry-run']),
          lockTimeout: args['lock-timeout'] as string | undefined,
        });
    }
    const report = await runVacuum(connections().pg, {
      dryRun: Boolean(args['dry-run']),
      maxDurationSeconds,
      costDelayMs: costDelay,
      lockTimeout: args['lock-timeout'] as string | undefined,
      statementTimeout: args['statement-timeout'] as string | undefined,
      full: args.full as string | undefined,
      force: Boolean(args.force),
      fullMaxBytes: settings.maintenance.vacuumFullMaxMb * 1048576,
    });
    const shown = report.tables.filter((t) => t.status !== 'none');
    if (!args['dry-run']) {
      writeMetricsFile(statePaths().metricsDir, 'edupulse_vacuum.prom', samples(report));
    }
    return outcome(
      { ...report, partitions },
      () =>
        [
          ...(partitions.length
            ? partitions.map((p) => `partitions: ${p.status} ${p.action}${p.detail ? ` (${p.detail})` : ''}`)
            : args.full
              ? []
              : ['partitions: as declared; nothing to do']),
          report.horizon.blocked
            ? `xmin horizon held back by ${report.horizon.holders.length} (every open snapshot is listed, none ignored for being young): rows deleted after the oldest began cannot be removed until it ends:\n${report.horizon.holders.map((h) => `  ${h}`).join('\n')}`
            : 'xmin horizon: no other open transaction, prepared transaction or replication slot holds it back',
          `attendance window: ${
            report.attendanceWindow.status === 'done'
              ? `moved ${report.attendanceWindow.days} day(s) to today`
              : `${report.attendanceWindow.status} (${report.attendanceWindow.detail})`
          }`,
          shown.length
            ? table([
                ['TABLE', 'ACTION', 'STATUS', 'REASON', 'SECONDS', 'DEAD BEFORE', 'DEAD AFTER'],
                ...shown.map((t) => [
                  t.table,
                  t.action,
                  t.status,
                  t.detail ?? t.reason,
                  t.seconds?.toFixed(2) ?? '-',
                  String(t.deadBefore),
                  t.deadAfter === undefined ? '-' : String(t.deadAfter),
                ]),
              ])
            : 'every table is below its thresholds; nothing to do',
          ...(report.budgetSpent ? ['time budget spent: the remaining tables were not started'] : []),
        ].join('\n'),
      report.tables.some((t) => t.status === 'failed') ||
        report.attendanceWindow.status === 'failed' ||
        partitions.some((p) => p.status === 'failed')
        ? 1
        : 0,
    );
  },
);
