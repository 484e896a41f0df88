-- Every student that has a prediction, with their latest one: the same rows
-- as the documented correlated subquery on MAX(prediction_date), read from
-- edupulse_derived.latest_predictions (one row per student, names included,
-- kept exact by triggers) so it is one scan, not a search per student.
-- Ties (two predictions at the same latest prediction_date): one row, the
-- prediction inserted last (highest id); the documented definition returns both.
SELECT l.student_id,
       l.first_name,
       l.last_name,
       l.risk_score,
       l.risk_category
  FROM edupulse_derived.latest_predictions l
