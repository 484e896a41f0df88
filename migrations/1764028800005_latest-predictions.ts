// Each student's latest prediction, kept exact by triggers on predictions, so
// student_risk_summary reads one row per student instead of searching each
// student's history (the documented correlated subquery).
//
// Latest = greatest (prediction_date, id): on equal dates the later-inserted
// prediction wins. The table lives in its own schema with no grants; the
// view (owned by the owner) reads it, and the trigger functions are SECURITY
// DEFINER so app_user's inserts keep it current without write access to it.
//
// Concurrency: inserts (the common path, also COPY) upsert with "only if
// greater", a commutative max that needs no lock beyond the row's. Updates,
// deletes and truncates recompute the affected students from predictions
// after taking a SHARE ROW EXCLUSIVE lock on the table, which waits for every
// in-flight writer of it, so the recompute sees their committed rows.
import type { MigrationBuilder } from 'node-pg-migrate';

const S = 'edupulse_derived';
const T = `${S}.latest_predictions`;
const COLS = 'student_id, prediction_id, prediction_date, risk_score, risk_category';
const PICK = (from: string, where = '') =>
  `SELECT DISTINCT ON (x.student_id) x.student_id, x.id, x.prediction_date, x.risk_score, x.risk_category
     FROM ${from} x ${where} ORDER BY x.student_id, x.prediction_date DESC, x.id DESC`;
const DEFINER = { language: 'plpgsql', security: 'DEFINER' } as const;

export async function up(pgm: MigrationBuilder): Promise<void> {
  pgm.createSchema(S);
  pgm.createTable({ schema: S, name: 'latest_predictions' }, {
    student_id: { type: 'varchar', primaryKey: true, references: 'public.students(student_id)', onDelete: 'CASCADE' },
    prediction_id: { type: 'integer', notNull: true },
    prediction_date: { type: 'timestamptz', notNull: true },
    risk_score: { type: 'double precision', notNull: true },
    risk_category: { type: 'varchar(20)' },
  });
  pgm.createFunction({ schema: S, name: 'latest_after_insert' }, [], { ...DEFINER, returns: 'trigger' }, `
BEGIN
  INSERT INTO ${T} AS l (${COLS})
  ${PICK('new_rows')}
  ON CONFLICT (student_id) DO UPDATE
    SET prediction_id = EXCLUDED.prediction_id, prediction_date = EXCLUDED.prediction_date,
        risk_score = EXCLUDED.risk_score, risk_category = EXCLUDED.risk_category
    WHERE (EXCLUDED.prediction_date, EXCLUDED.prediction_id) > (l.prediction_date, l.prediction_id);
  RETURN NULL;
END`);
  pgm.createFunction({ schema: S, name: 'recompute_latest' }, [{ name: 'ids', type: 'varchar[]' }], { ...DEFINER, returns: 'void' }, `
BEGIN
  LOCK TABLE ${T} IN SHARE ROW EXCLUSIVE MODE;
  DELETE FROM ${T} WHERE student_id = ANY (ids);
  INSERT INTO ${T} AS l (${COLS})
  ${PICK('public.predictions', 'WHERE x.student_id = ANY (ids)')}
  ON CONFLICT (student_id) DO UPDATE
    SET prediction_id = EXCLUDED.prediction_id, prediction_date = EXCLUDED.prediction_date,
        risk_score = EXCLUDED.risk_score, risk_category = EXCLUDED.risk_category;
END`);
  pgm.createFunction({ schema: S, name: 'latest_after_update' }, [], { ...DEFINER, returns: 'trigger' }, `
BEGIN
  PERFORM ${S}.recompute_latest(ARRAY(SELECT student_id FROM old_rows UNION SELECT student_id FROM new_rows));
  RETURN NULL;
END`);
  pgm.createFunction({ schema: S, name: 'latest_after_delete' }, [], { ...DEFINER, returns: 'trigger' }, `
BEGIN
  PERFORM ${S}.recompute_latest(ARRAY(SELECT DISTINCT student_id FROM old_rows));
  RETURN NULL;
END`);
  pgm.createFunction({ schema: S, name: 'latest_after_truncate' }, [], { ...DEFINER, returns: 'trigger' }, `
BEGIN
  -- DELETE, not TRUNCATE: a TRUNCATE ... CASCADE of predictions may already hold this table in the same statement.
  DELETE FROM ${T};
  RETURN NULL;
END`);
  // Fixed search_path: a SECURITY DEFINER function must not resolve names through the caller's path.
  for (const f of ['latest_after_insert()', 'recompute_latest(varchar[])', 'latest_after_update()', 'latest_after_delete()', 'latest_after_truncate()']) {
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
  // Predictions already there.
  pgm.sql(`INSERT INTO ${T} (${COLS}) ${PICK('public.predictions')}`);
}

export async function down(pgm: MigrationBuilder): Promise<void> {
  for (const op of ['insert', 'update', 'delete', 'truncate']) pgm.sql(`DROP TRIGGER predictions_latest_${op} ON public.predictions`);
  pgm.dropSchema(S, { cascade: true });
}
