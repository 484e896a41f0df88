// The high/critical list from a table holding only those rows (#19). The list
// read latest_predictions through a partial index on risk_category: at 200k
// students its 20k rows lay scattered over the whole table (7-13 ms on the
// server where a dense table of the same rows takes under 1 ms), and the index,
// by naming the column, made every update that changed a student's category a
// non-HOT one (a new key-index entry each), the worst prediction night's extra
// cost (BENCHMARKS.md).
//
// Now latest_predictions has no index but its key, so every nightly update is
// HOT, and edupulse_derived.latest_high holds a copy of its high/critical rows,
// dense. student_risk_summary reads the copy for those categories and
// latest_predictions for the others (UNION ALL, each branch's filter exclusive
// of the other's, so a filter on the category reads one branch only).
//
// The copy follows latest_predictions wherever that table is written, in the
// same trigger functions, for the students they changed: a student's copy is
// written only by a transaction holding that student's latest_predictions row
// (updated or inserted by it: every row the insert trigger applied, the rename
// trigger's), or the table-wide lock the recompute takes; so two writers of one
// student's copy wait for each other as they do on the row.
import type { MigrationBuilder } from 'node-pg-migrate';
import { COLS, PICK, SET_PREDICTION, T } from './1764028800005_latest-predictions.ts';
import { replaceBody } from './1764028800010_latest-predictions-batch.ts';
import { ONE_STATEMENT } from './1764028800012_latest-predictions-one-statement.ts';

export const H = 'edupulse_derived.latest_high';
const HIGH = "('high', 'critical')";
/** True for a high/critical category; false for any other and for none. */
const isHigh = (col: string) => `coalesce(${col} IN ${HIGH}, false)`;
const SECDEF = `LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp`;

/** The copy made whole, from latest_predictions (in key order). */
const COPY_ALL = `INSERT INTO ${H} (${COLS}) SELECT ${COLS} FROM ${T} WHERE risk_category IN ${HIGH} ORDER BY student_id`;

/** The copy of each given student's row, from latest_predictions (`ids`: an expression naming them). */
const resync = (ids: string) => `
  DELETE FROM ${H} WHERE student_id = ANY (${ids});
  INSERT INTO ${H} (${COLS}) SELECT ${COLS} FROM ${T} WHERE student_id = ANY (${ids}) AND risk_category IN ${HIGH};`;

/**
 * The copy of the students whose latest_predictions row now holds a row of the batch (new_rows), at `pad`: one
 * MERGE, one pass over the batch joined to the copy (a student leaving high/critical is deleted from it, one staying
 * is updated, one entering is inserted with the names latest_predictions holds). With `every`, each row of the
 * batch is known to be its student's latest, one per student (no join to latest_predictions to find out).
 * Measured at 200k (#19): 83-100 ms, against 210 ms for a DELETE and an INSERT ... ON CONFLICT.
 */
export const syncBatch = (every: boolean, pad: string) => {
  const source = every
    ? 'new_rows n'
    : `(SELECT x.* FROM new_rows x JOIN ${T} a ON a.student_id = x.student_id AND a.prediction_id = x.id) n`;
  const name = (col: string) => `(SELECT l.${col} FROM ${T} l WHERE l.student_id = n.student_id)`;
  return `MERGE INTO ${H} h
USING ${source} ON h.student_id = n.student_id
 WHEN MATCHED AND NOT ${isHigh('n.risk_category')} THEN DELETE
 WHEN MATCHED THEN
  UPDATE SET prediction_id = n.id, prediction_date = n.prediction_date, risk_score = n.risk_score, risk_category = n.risk_category
 WHEN NOT MATCHED AND n.risk_category IN ${HIGH} THEN
  INSERT (${COLS})
  VALUES (n.student_id, n.id, n.prediction_date, n.risk_score, n.risk_category, ${name('first_name')}, ${name('last_name')});`
    .split('\n')
    .map((line) => pad + line + '\n')
    .join('');
};

const NIGHTLY = '  IF applied = in_batch THEN RETURN NULL; END IF;\n';
const REST =
  '  -- Every student left was updated: nobody is new to the table.\n  IF updated = students_in_batch THEN RETURN NULL; END IF;\n';
const END = '  END IF;\n  RETURN NULL;\nEND';

/**
 * The insert trigger's body: as before, each way out first copying the rows it applied. The nightly batch's
 * early return syncs every row of it; the rest of the body, which returned early when every student left was
 * updated, now runs its insert of new students under the opposite test and ends with the sync of what it applied.
 */
export const WITH_HIGH = (() => {
  const body = ONE_STATEMENT;
  for (const find of [NIGHTLY, REST, END])
    if (body.split(find).length !== 2) throw new Error(`latest-predictions-high: expected one "${find}"`);
  const [head, afterNightly] = body.split(NIGHTLY) as [string, string];
  const [middle, afterRest] = afterNightly.split(REST) as [string, string];
  const newStudents = afterRest.slice(0, afterRest.indexOf(END) + '  END IF;\n'.length);
  const indent = (text: string) => text.replace(/^(?=.)/gm, '  ');
  return (
    head +
    '  IF applied = in_batch THEN\n' +
    syncBatch(true, '    ') +
    '    RETURN NULL;\n  END IF;\n' +
    middle +
    '  -- Some student left was not updated: new to the table, locked and inserted.\n' +
    '  IF updated <> students_in_batch THEN\n' +
    indent(newStudents) +
    '  END IF;\n' +
    syncBatch(false, '  ') +
    '  RETURN NULL;\nEND'
  );
})();

const RECOMPUTE = (withHigh: boolean) => `
CREATE OR REPLACE FUNCTION edupulse_derived.recompute_latest(ids varchar[]) RETURNS void ${SECDEF} AS $body$
BEGIN
  LOCK TABLE ${T} IN SHARE ROW EXCLUSIVE MODE;
  DELETE FROM ${T} WHERE student_id = ANY (ids);
  INSERT INTO ${T} AS l (${COLS})
  ${PICK('public.predictions', 'WHERE x.student_id = ANY (ids)')}
  ON CONFLICT (student_id) DO UPDATE SET ${SET_PREDICTION}, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name;${withHigh ? resync('ids') : ''}
END$body$`;

const TRUNCATED = (withHigh: boolean) => `
CREATE OR REPLACE FUNCTION edupulse_derived.latest_after_truncate() RETURNS trigger ${SECDEF} AS $body$
BEGIN
  -- DELETE, not TRUNCATE: a TRUNCATE ... CASCADE of predictions may already hold this table in the same statement.
  DELETE FROM ${T};${withHigh ? `\n  DELETE FROM ${H};` : ''}
  RETURN NULL;
END$body$`;

const RENAMED = (withHigh: boolean) => `
CREATE OR REPLACE FUNCTION edupulse_derived.latest_after_student_update() RETURNS trigger ${SECDEF} AS $body$
BEGIN
  UPDATE ${T} l SET first_name = n.first_name, last_name = n.last_name
    FROM new_rows n
   WHERE l.student_id = n.student_id AND (l.first_name, l.last_name) IS DISTINCT FROM (n.first_name, n.last_name);${
     withHigh
       ? `
  UPDATE ${H} h SET first_name = n.first_name, last_name = n.last_name
    FROM new_rows n
   WHERE h.student_id = n.student_id AND (h.first_name, h.last_name) IS DISTINCT FROM (n.first_name, n.last_name);`
       : ''
   }
  RETURN NULL;
END$body$`;

const REBUILD = (withHigh: boolean) => `
CREATE OR REPLACE FUNCTION edupulse_derived.rebuild_latest_predictions() RETURNS void ${SECDEF} SET work_mem = '256MB' AS $body$
BEGIN
  LOCK TABLE ${T} IN SHARE ROW EXCLUSIVE MODE;
  DELETE FROM ${T};
  INSERT INTO ${T} (${COLS}) ${PICK('public.predictions')};${
    withHigh
      ? `
  DELETE FROM ${H};
  ${COPY_ALL};`
      : ''
  }
END$body$`;

// student_risk_summary as this migration leaves it and as it found it. The reconcile engine declares the view
// (views/student_risk_summary.sql) and makes it when it is missing; where it is there, the migration (and its
// down) puts the definition its tables need in place, so a database between `migrate` and `apply` reads right.
const VIEW_BEFORE = `SELECT l.student_id, l.first_name, l.last_name, l.risk_score, l.risk_category FROM ${T} l`;
const VIEW_WITH_HIGH = `SELECT h.student_id, h.first_name, h.last_name, h.risk_score, h.risk_category FROM ${H} h
UNION ALL
SELECT l.student_id, l.first_name, l.last_name, l.risk_score, l.risk_category FROM ${T} l
 WHERE l.risk_category IS NULL OR l.risk_category NOT IN ${HIGH}`;
const replaceViewIfThere = (query: string) => `DO $$ BEGIN
  IF to_regclass('public.student_risk_summary') IS NOT NULL THEN
    CREATE OR REPLACE VIEW public.student_risk_summary AS ${query};
  END IF;
END $$`;

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.sql(`CREATE TABLE ${H} (
    student_id varchar PRIMARY KEY REFERENCES public.students (student_id) ON DELETE CASCADE,
    prediction_id integer NOT NULL,
    prediction_date timestamptz NOT NULL,
    risk_score double precision NOT NULL,
    risk_category varchar(20) NOT NULL CHECK (risk_category IN ${HIGH}),
    first_name varchar NOT NULL,
    last_name varchar NOT NULL
  ) WITH (fillfactor = 50)`);
  pgm.sql(`COMMENT ON TABLE ${H} IS 'the high/critical rows of latest_predictions, dense; kept by its triggers'`);
  for (const sql of [RECOMPUTE(true), TRUNCATED(true), RENAMED(true), REBUILD(true), replaceBody(WITH_HIGH)])
    pgm.sql(sql);
  // Under the recompute's lock: no writer of latest_predictions runs while the copy is made.
  pgm.sql(`LOCK TABLE ${T} IN SHARE ROW EXCLUSIVE MODE`);
  pgm.sql(COPY_ALL);
  pgm.sql(replaceViewIfThere(VIEW_WITH_HIGH));
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  for (const sql of [RECOMPUTE(false), TRUNCATED(false), RENAMED(false), REBUILD(false), replaceBody(ONE_STATEMENT)])
    pgm.sql(sql);
  pgm.sql(replaceViewIfThere(VIEW_BEFORE));
  pgm.sql(`DROP TABLE ${H}`);
}
