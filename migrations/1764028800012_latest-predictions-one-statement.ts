// The nightly prediction batch through latest_predictions' insert trigger in one
// statement. The trigger (migration latest-predictions-batch) sorted the whole
// batch to keep each student's greatest row (DISTINCT ON), materialized it, and
// joined it to the table: at 200k students that sort and materialization were
// about half of what the trigger cost (bench:writes, #19).
//
// Now the batch is first applied as it is: one UPDATE joining the transition
// table, in student order, to the table, "only if greater". In student order,
// the rows are met in the order they lie in (a batch in another order cost a
// third more on the worst night: pages and index met at random), and two
// batches for the same students mostly lock them in the same order, so they
// wait for each other rather than deadlock. An UPDATE changes a row at most once
// per statement, so when it changed as many rows as the batch holds, every row
// of the batch was a new latest for a different student who already had one:
// nothing more to do, and that is the nightly batch. Otherwise (a student twice
// in the batch, a back-dated row, a student new to the table) the rows it did
// not apply go through the previous body: sorted, applied if greater, new
// students locked and inserted with their names. A row that was applied is the
// table's row for its student (its id is there), so it is left out.
import type { MigrationBuilder } from 'node-pg-migrate';
import { T } from './1764028800005_latest-predictions.ts';
import { INSERT_IN_PLACE, replaceBody } from './1764028800010_latest-predictions-batch.ts';

const NOT_APPLIED = `WHERE NOT EXISTS (SELECT 1 FROM ${T} a WHERE a.student_id = x.student_id AND a.prediction_id = x.id)`;

/** Each edit of the previous body, [the text it replaces, which must occur once, the replacement], in order. */
const EDITS: Array<[find: string, by: string]> = [
  [
    '-- Every student updated (the nightly batch): nobody new to the table, nothing more to do.',
    '-- Every student left was updated: nobody is new to the table.',
  ],
  [
    'BEGIN\n',
    `  in_batch bigint;
  applied bigint;
BEGIN
  UPDATE ${T} l
     SET prediction_id = n.id, prediction_date = n.prediction_date, risk_score = n.risk_score,
         risk_category = n.risk_category
    FROM (SELECT * FROM new_rows ORDER BY student_id) n
   WHERE l.student_id = n.student_id AND (n.prediction_date, n.id) > (l.prediction_date, l.prediction_id);
  GET DIAGNOSTICS applied = ROW_COUNT;
  SELECT count(*) INTO in_batch FROM new_rows;
  -- Each row of the batch changed a different student's row: nothing left (the nightly batch).
  IF applied = in_batch THEN RETURN NULL; END IF;
  -- The rows not applied: the greatest of each student's, if greater than the table's.
`,
  ],
  ['FROM new_rows x ORDER BY', `FROM new_rows x ${NOT_APPLIED} ORDER BY`],
];

/** The insert trigger's body: the batch applied in one UPDATE, the rest (if any) as before. */
export const ONE_STATEMENT = EDITS.reduce((body, [find, by]) => {
  if (body.split(find).length !== 2) throw new Error(`latest-predictions-one-statement: expected one "${find}"`);
  return body.replace(find, by);
}, INSERT_IN_PLACE);

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.sql(replaceBody(ONE_STATEMENT));
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  pgm.sql(replaceBody(INSERT_IN_PLACE));
}
