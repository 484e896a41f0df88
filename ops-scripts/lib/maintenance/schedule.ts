// The daily jobs on a timetable from settings: as crontab lines or systemd
// timer units for hosts with a scheduler, or run in-process (croner) for
// hosts without one. Each job keeps its own lock; in-process, a job is never
// started while its previous run is still going (croner's protect).
import { Cron } from 'croner';
import type { MaintenanceSettings } from '../../../infra/settings.ts';

export interface ScheduledJob {
  name: string;
  cron: string;
  args: string[];
  description: string;
}

export function scheduledJobs(s: MaintenanceSettings['schedule']): ScheduledJob[] {
  return [
    {
      name: 'backup-physical',
      cron: s.physicalBackup,
      args: ['backup', '--type', 'physical'],
      description: 'daily physical base backup',
    },
    {
      name: 'backup-logical',
      cron: s.logicalBackup,
      args: ['backup', '--type', 'logical'],
      description: 'nightly logical dump',
    },
    {
      name: 'vacuum',
      cron: s.vacuum,
      args: ['vacuum', '--max-duration', '2h'],
      description: 'vacuum/analyze planner run',
    },
    { name: 'drill', cron: s.drill, args: ['drill'], description: 'weekly recovery drill' },
    { name: 'health', cron: s.health, args: ['health', '--textfile'], description: 'hourly health check' },
    { name: 'report', cron: s.report, args: ['report'], description: 'daily recovery report page (after the drill)' },
  ];
}

/** How a job is started: `node` (its absolute path: cron's PATH is minimal), the bin, the environment. */
export interface Invocation {
  node: string;
  bin: string;
  env: Record<string, string>;
  logDir: string;
}

const shellQuote = (v: string) => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);

export function crontab(jobs: ScheduledJob[], inv: Invocation): string {
  const env = Object.entries(inv.env).map(([k, v]) => `${k}=${shellQuote(v)}`);
  return (
    [
      '# edupulse-db jobs (from infra/settings.ts); each job takes its own lock and writes its metrics.',
      ...env,
      ...jobs.map(
        (j) =>
          `${j.cron} ${shellQuote(inv.node)} ${shellQuote(inv.bin)} ${j.args.map(shellQuote).join(' ')} >> ${shellQuote(`${inv.logDir}/${j.name}.log`)} 2>&1  # ${j.description}`,
      ),
    ].join('\n') + '\n'
  );
}

/** systemd OnCalendar from a five-field cron line (minute hour day month weekday; lists and * only). */
export function onCalendar(cron: string): string {
  const [min, hour, dom, mon, dow] = cron.trim().split(/\s+/);
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const wd =
    dow === '*'
      ? ''
      : `${dow!
          .split(',')
          .map((d) => days[Number(d) % 7])
          .join(',')} `;
  const two = (v: string) =>
    v === '*'
      ? '*'
      : v
          .split(',')
          .map((x) => x.padStart(2, '0'))
          .join(',');
  return `${wd}*-${two(mon!)}-${two(dom!)} ${two(hour!)}:${two(min!)}:00`;
}

export function systemdUnits(jobs: ScheduledJob[], inv: Invocation): string {
  return jobs
    .map((j) =>
      [
        `# edupulse-db-${j.name}.service`,
        '[Unit]',
        `Description=edupulse-db ${j.description}`,
        '',
        '[Service]',
        'Type=oneshot',
        ...Object.entries(inv.env).map(([k, v]) => `Environment=${k}=${v}`),
        `ExecStart=${inv.node} ${inv.bin} ${j.args.join(' ')}`,
        `StandardOutput=append:${inv.logDir}/${j.name}.log`,
        `StandardError=append:${inv.logDir}/${j.name}.log`,
        '',
        `# edupulse-db-${j.name}.timer`,
        '[Unit]',
        `Description=edupulse-db ${j.description}`,
        '',
        '[Timer]',
        `OnCalendar=${onCalendar(j.cron)}`,
        'Persistent=true',
        '',
        '[Install]',
        'WantedBy=timers.target',
        '',
      ].join('\n'),
    )
    .join('\n');
}

export interface RunResult {
  job: string;
  startedAt: string;
  seconds: number;
  ok: boolean;
  detail: string;
}

/**
 * Runs each job on its timetable in this process. A run that comes due while
 * the previous one of the same job is still going is refused and reported.
 */
export function runScheduler(
  jobs: Array<{ name: string; cron: string; run: () => Promise<{ ok: boolean; detail: string }> }>,
  report: (r: RunResult | { job: string; refused: string }) => void,
): { stop(): void } {
  const crons = jobs.map(
    (j) =>
      new Cron(
        j.cron,
        {
          name: j.name,
          protect: () => report({ job: j.name, refused: 'the previous run is still going; this one is skipped' }),
        },
        async () => {
          const startedAt = new Date();
          try {
            const r = await j.run();
            report({
              job: j.name,
              startedAt: startedAt.toISOString(),
              seconds: (Date.now() - startedAt.getTime()) / 1000,
              ok: r.ok,
              detail: r.detail,
            });
          } catch (err) {
            report({
              job: j.name,
              startedAt: startedAt.toISOString(),
              seconds: (Date.now() - startedAt.getTime()) / 1000,
              ok: false,
              detail: (err as Error).message,
            });
          }
        },
      ),
  );
  return { stop: () => crons.forEach((c) => c.stop()) };
}
