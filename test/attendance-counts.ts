// The trigger-kept attendance counts against the table they count: the
// students whose stored absences/tardies (as of the window's day) differ
// from a recount of attendance_records. Empty when the counts are exact.
import type { PgClient } from '../ops-scripts/lib/db.ts';

export async function countsDrift(c: PgClient): Promise<unknown[]> {
  const { rows } = await c.query(`
    WITH w AS (SELECT as_of FROM edupulse_derived.attendance_window),
         truth AS (SELECT student_id, count(*) FILTER (WHERE status = 'absent')::int AS absences,
                          count(*) FILTER (WHERE status = 'tardy')::int AS tardies
                     FROM attendance_records, w WHERE status IN ('absent', 'tardy') AND date >= w.as_of - 30
                    GROUP BY student_id)
    SELECT * FROM truth FULL JOIN edupulse_derived.attendance_issue_counts c USING (student_id)
     WHERE (truth.absences, truth.tardies) IS DISTINCT FROM (c.absences, c.tardies)
       AND NOT (truth.student_id IS NULL AND c.absences = 0 AND c.tardies = 0)`);
  return rows;
}
