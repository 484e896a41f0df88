-- Students with more than five absences or tardies in the last 30 days (the
-- documented "students with recent attendance issues" query), with the counts.
-- Read from edupulse_derived.attendance_issue_counts (kept by triggers; see its
-- migration): the counts are as of the window's day A, so on a day D >= A only
-- students stored above five can qualify, and for those alone the absences and
-- tardies dated A - 30 .. D - 31 (left the window since) are subtracted. On a
-- day before A (a clock set back) the counts are taken live instead.
SELECT s.student_id,
       s.first_name,
       s.last_name,
       s.grade_level,
       r.absences_30d,
       r.tardies_30d,
       r.issues_30d
  FROM (SELECT c.student_id,
               (c.absences - g.absences)::bigint AS absences_30d,
               (c.tardies - g.tardies)::bigint AS tardies_30d,
               (c.absences + c.tardies - g.absences - g.tardies)::bigint AS issues_30d
          FROM edupulse_derived.attendance_window w
          JOIN edupulse_derived.attendance_issue_counts c ON w.as_of <= current_date
          CROSS JOIN LATERAL (
                SELECT count(*) FILTER (WHERE a.status = 'absent') AS absences,
                       count(*) FILTER (WHERE a.status = 'tardy') AS tardies
                  FROM public.attendance_records a
                 WHERE w.as_of < current_date
                   AND a.student_id = c.student_id
                   AND a.date >= w.as_of - 30
                   AND a.date < current_date - 30
                   AND a.status IN ('absent', 'tardy')) g
         WHERE c.absences + c.tardies > 5
        UNION ALL
        SELECT a.student_id,
               count(*) FILTER (WHERE a.status = 'absent'),
               count(*) FILTER (WHERE a.status = 'tardy'),
               count(*)
          FROM public.attendance_records a
         WHERE (SELECT w.as_of FROM edupulse_derived.attendance_window w) > current_date
           AND a.date >= current_date - 30
           AND a.status IN ('absent', 'tardy')
         GROUP BY a.student_id) r
  JOIN public.students s ON s.student_id = r.student_id
 WHERE r.issues_30d > 5
