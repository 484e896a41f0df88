// The nightly prediction batch (a new prediction for every student) cost 1.8x
// its trigger-free time through latest_predictions' insert trigger (bench:writes,
// #19). What it spent: a FOR SHARE lock on every student concerned (dirtying
// and WAL-logging the students table for a batch that never changes it), a
// join to students for names the upsert then ignored, and non-HOT updates (a
// new index entry per row in both indexes).
//
// Now: students who already have a latest row are updated in place (UPDATE with
// "only if greater", re-checked on the newest row version, so concurrent
// batches commute), touching neither names nor students; only students new to
// the table are locked FOR SHARE and joined for their names, as before. With
// the category index partial (views/indexes.ts says why) and fillfactor 50 (room
// on every page for each row's next version, pruned by the batch after), an
// update that keeps a category is HOT: a heap tuple, no index entry. When every
// student in the batch was updated, nobody is new and the anti-join is skipped.
import type { MigrationBuilder } from 'node-pg-migrate';
import { COLS, INSERT_BODY, PICK, SET_PREDICTION, T } from './1764028800005_latest-predictions.ts';

/** The insert trigger's body as this migration made it (migration latest-predictions-one-statement builds on it). */
export const INSERT_IN_PLACE = `
DECLARE
  students_in_batch bigint;
  updated bigint;
BEGIN
  WITH n AS (SELECT DISTINCT ON (x.student_id) x.student_id, x.id, x.prediction_date, x.risk_score, x.risk_category
               FROM new_rows x ORDER BY x.student_id, x.prediction_date DESC, x.id DESC),
       u AS (UPDATE ${T} l
                SET prediction_id = n.id, prediction_date = n.prediction_date, risk_score = n.risk_score,
                    risk_category = n.risk_category
               FROM n
              WHERE l.student_id = n.student_id AND (n.prediction_date, n.id) > (l.prediction_date, l.prediction_id)
          RETURNING 1)
  SELECT (SELECT count(*) FROM n), (SELECT count(*) FROM u) INTO students_in_batch, updated;
  -- Every student updated (the nightly batch): nobody new to the table, nothing more to do.
  IF updated = students_in_batch THEN RETURN NULL; END IF;
  PERFORM 1 FROM public.students s
   WHERE s.student_id IN (SELECT n.student_id FROM new_rows n WHERE NOT EXISTS (SELECT 1 FROM ${T} l WHERE l.student_id = n.student_id))
   ORDER BY s.student_id FOR SHARE;
  IF FOUND THEN
    INSERT INTO ${T} AS l (${COLS})
    ${PICK('new_rows', `WHERE NOT EXISTS (SELECT 1 FROM ${T} e WHERE e.student_id = x.student_id)`)}
    ON CONFLICT (student_id) DO UPDATE SET ${SET_PREDICTION}
      WHERE (EXCLUDED.prediction_date, EXCLUDED.prediction_id) > (l.prediction_date, l.prediction_id);
  END IF;
  RETURN NULL;
END`;

export const replaceBody = (body: string) =>
  `CREATE OR REPLACE FUNCTION edupulse_derived.latest_after_insert() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
     SET search_path = pg_catalog, pg_temp SET work_mem = '64MB' AS $body$${body}$body$`;

/** Everything recomputed from predictions in one pass: the seeder's load (triggers off for speed) ends with it. */
const REBUILD = `CREATE FUNCTION edupulse_derived.rebuild_latest_predictions() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
     SET search_path = pg_catalog, pg_temp SET work_mem = '256MB' AS $body$
BEGIN
  LOCK TABLE ${T} IN SHARE ROW EXCLUSIVE MODE;
  DELETE FROM ${T};
  INSERT INTO ${T} (${COLS}) ${PICK('public.predictions')};
END$body$`;

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.sql(replaceBody(INSERT_IN_PLACE));
  pgm.sql(REBUILD);
  pgm.sql('REVOKE ALL ON FUNCTION edupulse_derived.rebuild_latest_predictions() FROM PUBLIC');
  pgm.sql(`ALTER TABLE ${T} SET (fillfactor = 50)`);
  // Rewritten so existing pages get the room too (one row per student: a short lock on a small table).
  pgm.sql(`CLUSTER ${T} USING latest_predictions_pkey`);
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.sql('DROP FUNCTION edupulse_derived.rebuild_latest_predictions()');
  pgm.sql(replaceBody(INSERT_BODY));
  pgm.sql(`ALTER TABLE ${T} RESET (fillfactor)`);
}
