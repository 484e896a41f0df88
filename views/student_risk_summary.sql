-- Every student that has a prediction, with their latest one: the same rows
-- as the documented correlated subquery on MAX(prediction_date), read from
-- edupulse_derived.latest_predictions (kept exact by triggers) so it scales.
-- Ties (two predictions at the same latest prediction_date): one row, the
-- prediction inserted last (highest id); the documented definition returns both.
SELECT s.student_id,
       s.first_name,
       s.last_name,
       l.risk_score,
       l.risk_category
  FROM public.students s
  JOIN edupulse_derived.latest_predictions l ON l.student_id = s.student_id
