// npm run seed: realistic synthetic data, loaded with COPY.
import { command, outcome } from './lib/cli.ts';
import { isCalendarDate } from './lib/restore/target.ts';
import { withClient } from './lib/db.ts';
import { badInput } from './lib/errors.ts';
import { migratorTarget } from './lib/migrate-target.ts';
import { progressBar } from './lib/progress.ts';
import { estimateRows, seed, SEED_TABLES } from './lib/seed/load.ts';

const usage = `Usage: edupulse-db seed [--students N] [--seed S] [--year-end YYYY-MM-DD] [--append | --truncate] [--json]

Generates realistic, deterministic data (the same --seed and --year-end give
the same rows) and loads it with COPY in one transaction: N students in grades
9-12, 180 school days of attendance up to --year-end, grades, discipline
incidents and ${10} predictions per student. A database that already holds
data is refused (exit 3) unless --append (more students) or --truncate
(replace everything).

  --students N       how many students (default 1000)
  --seed S           the seed (default edupulse)
  --year-end DATE    the last school day, up to today (default today, UTC)`;

await command(
  { name: 'seed', usage, boolean: ['append', 'truncate'], string: ['students', 'seed', 'year-end'] },
  async ({ args, json }) => {
    const students = args.students === undefined ? 1000 : Number(args.students);
    if (!Number.isInteger(students) || students < 1 || students > 10_000_000) {
      throw badInput(`--students ${args.students} is not a whole number from 1 to 10000000`);
    }
    const today = new Date().toISOString().slice(0, 10);
    const yearEnd = (args['year-end'] as string | undefined) ?? today;
    if (!isCalendarDate(yearEnd)) {
      throw badInput(`--year-end ${yearEnd} is not a date`, 'use YYYY-MM-DD');
    }
    // Attendance, grades and predictions are records of days that happened: dated later, the 30-day concerns
    // window and the latest predictions would read them as today's.
    if (yearEnd > today) {
      throw badInput(
        `--year-end ${yearEnd} is after today (${today}, UTC): the school year's attendance and predictions would be dated in the future`,
        'give a date up to today, or leave --year-end out (today)',
      );
    }
    if (args.append && args.truncate) throw badInput('--append and --truncate exclude each other');
    const bar = json ? undefined : progressBar(estimateRows(students), 'rows');
    const result = await seed(
      migratorTarget(),
      { seed: String(args.seed ?? 'edupulse'), students, yearEnd },
      { existing: args.append ? 'append' : args.truncate ? 'truncate' : 'refuse', onRows: (n) => bar?.tick(n) },
    );
    bar?.done();
    await withClient(migratorTarget(), (c) => c.query(`ANALYZE ${SEED_TABLES.join(', ')}`));
    return outcome(result, (r) =>
      [
        ...Object.entries(r.rows).map(([t, n]) => `${t.padEnd(22)} ${n.toLocaleString().padStart(12)} rows`),
        `loaded ${r.totalRows.toLocaleString()} rows in ${r.seconds.toFixed(1)}s (${Math.round(r.rowsPerSecond).toLocaleString()} rows/s)`,
      ].join('\n'),
    );
  },
);
