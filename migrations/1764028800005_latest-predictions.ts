// Each student's latest prediction, with the student's names, kept exact by
// triggers on predictions and students, so student_risk_summary is one scan
// of one row per student instead of a search of each student's history (the
// documented correlated subquery) or a join.
//
// Latest = greatest (prediction_date, id): on equal dates the later-inserted
// prediction wins. The table lives in its own schema with no grants; the
// view (owned by the owner) reads it, and the trigger functions are SECURITY
// DEFINER so app_user's inserts keep it current without write access to it.
//
// Concurrency: inserts (the common path, also COPY) upsert with "only if
// greater", a commutative max that needs no lock beyond the row's; they take
// FOR SHARE on the students concerned first, so a concurrent rename either
// commits before (and its names are read) or waits (and its trigger then
// finds the row). An existing row keeps its names on upsert: renames own
// them. Updates, deletes and truncates recompute the affected students from
// predictions after taking a SHARE ROW EXCLUSIVE lock on the table, which
// waits for every in-flight writer of it, so the recompute sees their
// committed rows.
import type { MigrationBuilder } from 'node-pg-migrate';

const S = 'edupulse_derived';
export const T = `${S}.latest_predictions`;
export const COLS = 'student_id, prediction_id, prediction_date, risk_score, risk_category, first_name, last_name';
export const PICK = (from: string, where = '') =>
  `SELECT DISTINCT ON (x.student_id) x.student_id, x.id, x.prediction_date, x.risk_score, x.risk_category, s.first_name, s.last_name
     FROM ${from} x JOIN public.students s ON s.student_id = x.student_id ${where}
    ORDER BY x.student_id, x.prediction_date DESC, x.id DESC`;
export const SET_PREDICTION = `prediction_id = EXCLUDED.prediction_id, prediction_date = EXCLUDED.prediction_date,
        risk_score = EXCLUDED.risk_score, risk_category = EXCLUDED.risk_category`;
const DEFINER = { language: 'plpgsql', security: 'DEFINER' } as const;
/** The insert trigger's body as this migration made it (migration latest-predictions-batch replaces it). */
export const INSERT_BODY = `
BEGIN
  PERFORM 1 FROM public.students s WHERE s.student_id IN (SELECT n.student_id FROM new_rows n) ORDER BY s.student_id FOR SHARE;
  INSERT INTO ${T} AS l (${COLS})
  ${PICK('new_rows')}
  ON CONFLICT (student_id) DO UPDATE SET ${SET_PREDICTION}
    WHERE (EXCLUDED.prediction_date, EXCLUDED.prediction_id) > (l.prediction_date, l.prediction_id);
  RETURN NULL;
END`;

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createSchema(S);
  pgm.createTable(
    { schema: S, name: 'latest_predictions' },
    {
      student_id: { type: 'varchar', primaryKey: true, references: 'public.students(student_id)', onDelete: 'CASCADE' },
      prediction_id: { type: 'integer', notNull: true },
      prediction_date: { type: 'timestamptz', notNull: true },
      risk_score: { type: 'double precision', notNull: true },
      risk_category: { type: 'varchar(20)' },
      first_name: { type: 'varchar', notNull: true },
      last_name: { type: 'varchar', notNull: true },
    },
  );
  pgm.createFunction({ schema: S, name: 'latest_after_insert' }, [], { ...DEFINER, returns: 'trigger' }, INSERT_BODY);
  pgm.createFunction(
    { schema: S, name: 'recompute_latest' },
    [{ name: 'ids', type: 'varchar[]' }],
    { ...DEFINER, returns: 'void' },
    `
BEGIN
  LOCK TABLE ${T} IN SHARE ROW EXCLUSIVE MODE;
  DELETE FROM ${T} WHERE student_id = ANY (ids);
  INSERT INTO ${T} AS l (${COLS})
  ${PICK('public.predictions', 'WHERE x.student_id = ANY (ids)')}
  ON CONFLICT (student_id) DO UPDATE SET ${SET_PREDICTION}, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name;
END`,
  );
  pgm.createFunction(
    { schema: S, name: 'latest_after_update' },
    [],
    { ...DEFINER, returns: 'trigger' },
    `
BEGIN
  PERFORM ${S}.recompute_latest(ARRAY(SELECT student_id FROM old_rows UNION SELECT student_id FROM new_rows));
  RETURN NULL;
END`,
  );
  pgm.createFunction(
    { schema: S, name: 'latest_after_delete' },
    [],
    { ...DEFINER, returns: 'trigger' },
    `
BEGIN
  PERFORM ${S}.recompute_latest(ARRAY(SELECT DISTINCT student_id FROM old_rows));
  RETURN NULL;
END`,
  );
  pgm.createFunction(
    { schema: S, name: 'latest_after_truncate' },
    [],
    { ...DEFINER, returns: 'trigger' },
    `
BEGIN
  -- DELETE, not TRUNCATE: a TRUNCATE ... CASCADE of predictions may already hold this table in the same statement.
  DELETE FROM ${T};
  RETURN NULL;
END`,
  );
  pgm.createFunction(
    { schema: S, name: 'latest_after_student_update' },
    [],
    { ...DEFINER, returns: 'trigger' },
    `
BEGIN
  UPDATE ${T} l SET first_name = n.first_name, last_name = n.last_name
    FROM new_rows n
   WHERE l.student_id = n.student_id AND (l.first_name, l.last_name) IS DISTINCT FROM (n.first_name, n.last_name);
  RETURN NULL;
END`,
  );
  // Fixed search_path: a SECURITY DEFINER function must not resolve names through the caller's path.
  for (const f of [
    'latest_after_insert()',
    'recompute_latest(varchar[])',
    'latest_after_update()',
    'latest_after_delete()',
    'latest_after_truncate()',
    'latest_after_student_update()',
  ]) {
    pgm.sql(`ALTER FUNCTION ${S}.${f} SET search_path = pg_catalog, pg_temp`);
    pgm.sql(`REVOKE ALL ON FUNCTION ${S}.${f} FROM PUBLIC`);
  }
  pgm.sql(`CREATE TRIGGER predictions_latest_insert AFTER INSERT ON public.predictions
             REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${S}.latest_after_insert()`);
  pgm.sql(`CREATE TRIGGER predictions_latest_update AFTER UPDATE ON public.predictions
             REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${S}.latest_after_update()`);
  pgm.sql(`CREATE TRIGGER predictions_latest_delete AFTER DELETE ON public.predictions
             REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ${S}.latest_after_delete()`);
  pgm.sql(`CREATE TRIGGER predictions_latest_truncate AFTER TRUNCATE ON public.predictions
             FOR EACH STATEMENT EXECUTE FUNCTION ${S}.latest_after_truncate()`);
  pgm.sql(`CREATE TRIGGER students_latest_names AFTER UPDATE ON public.students
             REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${S}.latest_after_student_update()`);
  // Predictions already there.
  pgm.sql(`INSERT INTO ${T} (${COLS}) ${PICK('public.predictions')}`);
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  for (const op of ['insert', 'update', 'delete', 'truncate'])
    pgm.sql(`DROP TRIGGER predictions_latest_${op} ON public.predictions`);
  pgm.sql('DROP TRIGGER IF EXISTS students_latest_names ON public.students');
  pgm.dropSchema(S, { cascade: true });
}
