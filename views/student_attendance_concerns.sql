-- Students with more than five absences or tardies in the last 30 days (the
-- documented "students with recent attendance issues" query), with the counts.
SELECT s.student_id,
       s.first_name,
       s.last_name,
       s.grade_level,
       count(*) FILTER (WHERE a.status = 'absent') AS absences_30d,
       count(*) FILTER (WHERE a.status = 'tardy') AS tardies_30d,
       count(*) AS issues_30d
  FROM public.attendance_records a
  JOIN public.students s ON s.student_id = a.student_id
 WHERE a.date >= current_date - 30
   AND a.status IN ('absent', 'tardy')
 GROUP BY s.student_id
HAVING count(*) > 5
