-- Students with more than five absences or tardies in the last 30 days (the
-- documented "students with recent attendance issues" query), with the counts.
-- Counted per student first (an index-only scan of the partial index on
-- absences and tardies), so only the students who qualify are joined.
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
