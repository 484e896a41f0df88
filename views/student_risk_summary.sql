-- Every student that has a prediction, with their latest one: the same rows
-- as the documented correlated subquery on MAX(prediction_date), read from
-- the tables kept exact by triggers on predictions and students (one row per
-- student, names included), so it is one scan, not a search per student.
-- High/critical rows come from edupulse_derived.latest_high, which holds only
-- them, densely; the others from edupulse_derived.latest_predictions. The two
-- branches' filters exclude each other, so the planner drops the branch a
-- filter on risk_category contradicts (a high/critical list reads latest_high
-- alone).
-- Ties (two predictions at the same latest prediction_date): one row, the
-- prediction inserted last (highest id); the documented definition returns both.
SELECT h.student_id,
       h.first_name,
       h.last_name,
       h.risk_score,
       h.risk_category
  FROM edupulse_derived.latest_high h
UNION ALL
SELECT l.student_id,
       l.first_name,
       l.last_name,
       l.risk_score,
       l.risk_category
  FROM edupulse_derived.latest_predictions l
 WHERE l.risk_category IS NULL OR l.risk_category NOT IN ('high', 'critical')
