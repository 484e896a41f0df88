-- Students with more than five absences or tardies in the last 30 days (the
-- documented "students with recent attendance issues" query), with the counts.
-- Read from edupulse_derived.attendance_issue_counts (kept by triggers; see its
-- migration): the counts are as of the window's day A, so on a day D >= A only
-- students stored above five can qualify, and the absences and tardies dated
-- A - 30 .. D - 31 (left the window since; none when A is today) are
-- subtracted. On a day before A (a clock set back) they are counted live.
-- The window's day is read by scalar subqueries: one row, whatever its stats.
SELECT s.student_id,
       s.first_name,
       s.last_name,
       s.grade_level,
       (c.absences - coalesce(g.absences, 0))::bigint AS absences_30d,
       (c.tardies - coalesce(g.tardies, 0))::bigint AS tardies_30d,
       (c.absences + c.tardies - coalesce(g.absences + g.tardies, 0))::bigint AS issues_30d
  FROM edupulse_derived.attendance_issue_counts c
  JOIN public.students s ON s.student_id = c.student_id
  LEFT JOIN (SELECT a.student_id,
                    count(*) FILTER (WHERE a.status = 'absent') AS absences,
                    count(*) FILTER (WHERE a.status = 'tardy') AS tardies
               FROM public.attendance_records a
              WHERE a.date >= (SELECT w.as_of FROM edupulse_derived.attendance_window w) - 30
                AND a.date < current_date - 30
                AND a.status IN ('absent', 'tardy')
              GROUP BY a.student_id) g ON g.student_id = c.student_id
 WHERE (SELECT w.as_of FROM edupulse_derived.attendance_window w) <= current_date
   AND c.absences + c.tardies > 5
   AND c.absences + c.tardies - coalesce(g.absences + g.tardies, 0) > 5
UNION ALL
SELECT s.student_id,
       s.first_name,
       s.last_name,
       s.grade_level,
       r.absences_30d,
       r.tardies_30d,
       r.issues_30d
  FROM (SELECT a.student_id,
               count(*) FILTER (WHERE a.status = 'absent') AS absences_30d,
               count(*) FILTER (WHERE a.status = 'tardy') AS tardies_30d,
               count(*) AS issues_30d
          FROM public.attendance_records a
         WHERE a.date >= current_date - 30
           AND a.status IN ('absent', 'tardy')
         GROUP BY a.student_id
        HAVING count(*) > 5) r
  JOIN public.students s ON s.student_id = r.student_id
 WHERE (SELECT w.as_of FROM edupulse_derived.attendance_window w) > current_date
