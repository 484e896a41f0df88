// npm run schedule: the daily jobs as crontab lines, systemd units, or run in-process.
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { command } from './lib/cli.ts';
import { onInterrupt } from './lib/interrupt.ts';
import { crontab, runScheduler, scheduledJobs, systemdUnits } from './lib/maintenance/schedule.ts';
import { run } from './lib/run.ts';
import { PROJECT_ROOT, statePaths } from './lib/state.ts';
import { settingsFromEnv } from './lib/settings.ts';

const usage = `Usage: edupulse-db schedule [--systemd] | --run

Prints crontab lines for the daily physical backup, the nightly logical dump,
the vacuum run, the weekly drill, the hourly health check and the daily
report page, at the times of
infra/settings.ts (maintenance.schedule); each job takes its own lock, logs to
<state>/logs/<job>.log and writes its metrics to the textfile directory.
--systemd prints a .service and .timer unit per job instead.
--run runs the same jobs on the same timetable in this process (croner), for
hosts without cron; a job never overlaps itself; results are logged.`;

await command(
  { name: 'schedule', usage, boolean: ['systemd', 'run'], conflicts: [['systemd', 'run']] },
  async ({ args, out }) => {
    const settings = settingsFromEnv(process.env);
    const paths = statePaths();
    const jobs = scheduledJobs(settings.maintenance.schedule);
    const bin = join(PROJECT_ROOT, 'bin', 'edupulse-db.js');
    const env: Record<string, string> = { EDUPULSE_STATE_DIR: paths.root };
    for (const k of Object.keys(process.env))
      if (k.startsWith('EDUPULSE_') && k !== 'EDUPULSE_STATE_DIR') env[k] = process.env[k]!;
    if (!args.run) {
      out((args.systemd ? systemdUnits : crontab)(jobs, { node: process.execPath, bin, env, logDir: paths.logDir }));
      return;
    }
    mkdirSync(paths.logDir, { recursive: true });
    const log = join(paths.logDir, 'schedule.log');
    out(`running ${jobs.length} jobs in-process (${jobs.map((j) => `${j.name} "${j.cron}"`).join(', ')}); log: ${log}`);
    runScheduler(
      jobs.map((j) => ({
        name: j.name,
        cron: j.cron,
        run: async () => {
          const r = await run(process.execPath, [bin, ...j.args], {
            nothrow: true,
            // Stopped, the scheduler stops the job it is running the way a supervisor would: SIGTERM, then waits.
            forwardInterrupt: true,
            env: { EDUPULSE_STATE_DIR: paths.root },
          });
          appendFileSync(join(paths.logDir, `${j.name}.log`), r.stdout + r.stderr);
          return { ok: r.code === 0, detail: `exit ${r.code}` };
        },
      })),
      (r) => appendFileSync(log, `${new Date().toISOString()} ${JSON.stringify(r)}\n`),
    );
    // Until stopped: SIGTERM or Ctrl-C stops the scheduler, after the job it is running has undone its work.
    onInterrupt(() => {});
    await new Promise(() => {});
  },
);
