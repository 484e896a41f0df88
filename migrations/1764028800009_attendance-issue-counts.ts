// Each student's absences and tardies in the attendance window, kept exact by
// statement-level triggers on attendance_records, so student_attendance_concerns
// reads the few thousand students with more than five instead of aggregating
// every absence and tardy of the last 30 days (hundreds of thousands of rows at
// 200k students, and growing with enrolment).
//
// The counts are as of a day A (edupulse_derived.attendance_window.as_of): they
// count the absent/tardy rows dated A - 30 or later (later includes the future,
// as the query's open window does). For a reader on day D >= A the exact count
// is the stored one less the rows dated A - 30 .. D - 31, which have left the
// window since, so only students stored above five can qualify and the view
// subtracts those few days for them alone. advance_attendance_window(day) moves A
// to today (the daily vacuum job calls it) so that gap stays at most a day; on
// a day before A (a clock set back) the view counts live.
//
// Concurrency: a writer's trigger reads A under FOR KEY SHARE of the window row
// and the advance takes FOR UPDATE of it first, so a writer either counts with
// the old A and commits before the advance reads the table, or waits and counts
// with the new A. Deltas are upserted in student order (no deadlock between two
// batches), increments commute, and a count is never read-modify-written in
// the client. No foreign key to students: a cascaded erasure removes the
// student's attendance, whose delete trigger brings the count to zero, and the
// advance removes rows at zero.
import type { MigrationBuilder } from 'node-pg-migrate';

const S = 'edupulse_derived';
const COUNTS = `${S}.attendance_issue_counts`;
const WINDOW = `${S}.attendance_window`;
const ISSUE = "status IN ('absent', 'tardy')";
const DEFINER = { language: 'plpgsql', security: 'DEFINER' } as const;

/** Per student, +sign for each absent/tardy row of `rows` whose date meets `dates` (a SQL condition). */
const deltas = (rows: string, sign: '+' | '-', dates: string) =>
  `SELECT student_id, ${sign}(count(*) FILTER (WHERE status = 'absent'))::int AS absences,
          ${sign}(count(*) FILTER (WHERE status = 'tardy'))::int AS tardies
     FROM ${rows} WHERE ${ISSUE} AND ${dates} GROUP BY student_id`;

/** Adds the summed deltas per student, in student order; a student whose deltas cancel out is left alone. */
const APPLY = (source: string) => `
  INSERT INTO ${COUNTS} AS c (student_id, absences, tardies)
  SELECT student_id, sum(absences), sum(tardies) FROM (${source}) d
   GROUP BY student_id HAVING sum(absences) <> 0 OR sum(tardies) <> 0
   ORDER BY student_id
  ON CONFLICT (student_id) DO UPDATE SET absences = c.absences + EXCLUDED.absences, tardies = c.tardies + EXCLUDED.tardies`;

type Fn = [name: string, args: Array<{ name: string; type: string }>, returns: string, body: string];

/** A write trigger: the window's day read under FOR KEY SHARE (see above), then the deltas of `source` added. */
const onWrite = (name: string, source: string): Fn => [
  name,
  [],
  'trigger',
  `DECLARE a date;
BEGIN
  SELECT as_of INTO a FROM ${WINDOW} FOR KEY SHARE;
  ${APPLY(source)};
  RETURN NULL;
END`,
];
const IN_WINDOW = 'date >= a - 30';

const FUNCTIONS: Fn[] = [
  onWrite('attendance_after_insert', deltas('new_rows', '+', IN_WINDOW)),
  onWrite(
    'attendance_after_update',
    `${deltas('new_rows', '+', IN_WINDOW)} UNION ALL ${deltas('old_rows', '-', IN_WINDOW)}`,
  ),
  onWrite('attendance_after_delete', deltas('old_rows', '-', IN_WINDOW)),
  [
    'attendance_after_truncate',
    [],
    'trigger',
    `BEGIN
  -- DELETE, not TRUNCATE: a TRUNCATE ... CASCADE may already hold this table in the same statement.
  DELETE FROM ${COUNTS};
  RETURN NULL;
END`,
  ],
  [
    // Recounts everything as of day a, from attendance_records: the seeder's load (triggers off) and tests.
    'rebuild_attendance_counts',
    [{ name: 'a', type: 'date' }],
    'void',
    `BEGIN
  -- Writers first (they lock the table, then the window row), else a writer and this could deadlock.
  LOCK TABLE public.attendance_records IN SHARE MODE;
  UPDATE ${WINDOW} SET as_of = a;
  DELETE FROM ${COUNTS};
  ${APPLY(deltas('public.attendance_records', '+', IN_WINDOW))};
END`,
  ],
  [
    // Moves the window to day a (the vacuum job passes today): subtracts what has left it. Returns the days moved.
    'advance_attendance_window',
    [{ name: 'a', type: 'date' }],
    'integer',
    `DECLARE was date;
BEGIN
  SELECT as_of INTO was FROM ${WINDOW} FOR UPDATE;
  IF was >= a THEN RETURN 0; END IF;
  ${APPLY(deltas('public.attendance_records', '-', 'date >= was - 30 AND date < a - 30'))};
  DELETE FROM ${COUNTS} WHERE absences = 0 AND tardies = 0;
  UPDATE ${WINDOW} SET as_of = a;
  RETURN a - was;
END`,
  ],
];

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createTable(
    { schema: S, name: 'attendance_window' },
    {
      one: { type: 'boolean', primaryKey: true, default: true, check: 'one' },
      as_of: { type: 'date', notNull: true },
    },
  );
  pgm.sql(`INSERT INTO ${WINDOW} (as_of) VALUES (current_date)`);
  pgm.createTable(
    { schema: S, name: 'attendance_issue_counts' },
    {
      student_id: { type: 'varchar', primaryKey: true },
      absences: { type: 'integer', notNull: true },
      tardies: { type: 'integer', notNull: true },
    },
  );
  // The view's candidates are the students stored above five: without statistics on the sum the planner
  // guesses a third of the table and joins students by hashing all of them.
  pgm.sql(`CREATE STATISTICS ${S}.attendance_issue_counts_sum ON (absences + tardies) FROM ${COUNTS}`);
  for (const [name, args, returns, body] of FUNCTIONS) {
    pgm.createFunction({ schema: S, name }, args, { ...DEFINER, returns }, body);
    const sig = `${S}.${name}(${args.map((a) => a.type).join(', ')})`;
    // Fixed search_path: a SECURITY DEFINER function must not resolve names through the caller's path.
    pgm.sql(`ALTER FUNCTION ${sig} SET search_path = pg_catalog, pg_temp`);
    pgm.sql(`REVOKE ALL ON FUNCTION ${sig} FROM PUBLIC`);
  }
  for (const [op, refs] of [
    ['insert', 'NEW TABLE AS new_rows'],
    ['update', 'OLD TABLE AS old_rows NEW TABLE AS new_rows'],
    ['delete', 'OLD TABLE AS old_rows'],
  ] as const)
    pgm.sql(`CREATE TRIGGER attendance_issue_counts_${op} AFTER ${op.toUpperCase()} ON public.attendance_records
               REFERENCING ${refs} FOR EACH STATEMENT EXECUTE FUNCTION ${S}.attendance_after_${op}()`);
  pgm.sql(`CREATE TRIGGER attendance_issue_counts_truncate AFTER TRUNCATE ON public.attendance_records
             FOR EACH STATEMENT EXECUTE FUNCTION ${S}.attendance_after_truncate()`);
  // Attendance already there.
  pgm.sql(`SELECT ${S}.rebuild_attendance_counts(current_date)`);
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  // The managed view reads these counts; it goes with them, and apply makes it again from whatever views/ declares.
  pgm.sql('DROP VIEW IF EXISTS public.student_attendance_concerns');
  for (const op of ['insert', 'update', 'delete', 'truncate'])
    pgm.sql(`DROP TRIGGER attendance_issue_counts_${op} ON public.attendance_records`);
  for (const [name, args] of FUNCTIONS) pgm.sql(`DROP FUNCTION ${S}.${name}(${args.map((a) => a.type).join(', ')})`);
  pgm.dropTable({ schema: S, name: 'attendance_issue_counts' });
  pgm.dropTable({ schema: S, name: 'attendance_window' });
}
