// Converting a busy table into a range-partitioned one without stopping its
// writers, as SQL statements a node-pg-migrate migration runs one by one
// outside a transaction (pgm.noTransaction). The table becomes the first
// partition, FROM (MINVALUE) TO a bound B at least a month ahead of its
// newest row; the reconcile engine then keeps monthly partitions from B on
// (views/partitions.ts). Each step waits on writers only for catalog changes:
//   1. CHECK (col < B) NOT VALID            brief lock, no scan
//   2. VALIDATE CONSTRAINT                   scans, writers keep writing
//   3. UNIQUE (key, col) CONCURRENTLY        builds, writers keep writing
//   4. the swap, in one transaction: the table moves into the partitions'
//      schema (where no app role has a grant, so rows are reached only
//      through the parent and its statement triggers), a partitioned table
//      takes its name with its columns, defaults, constraints, grants,
//      triggers and the declared indexes (ON ONLY, the old ones attached),
//      the old table is attached (its CHECK proves the range: no scan), a
//      DEFAULT partition catches any row no month holds yet, and the views
//      reading the table are re-pointed (a view is bound to the table, not
//      its name). Each try takes its locks within a short lock_timeout and
//      is retried, so writers queue behind it for half a second at most.
// A writer waiting on the table during the swap resolves its name again once
// it has the lock, and writes into the new table (measured: 6 ms of catalog
// work for a 1M-row table; the test writes through it and loses nothing).
// Catalog fingerprints of the reconcile engine's markers are carried over, so
// `plan` sees the same managed indexes and views, not hand changes.
import { INDEX_FINGERPRINT, VIEW_FINGERPRINT } from '../../views/engine/catalog.ts';
import { quoteIdent as qi, quoteLiteral as ql, quoteQualified } from '../../ops-scripts/lib/db.ts';

export interface PartitionedTable {
  schema: string;
  table: string;
  /** The partition key column (a date). */
  column: string;
  /** The primary key's columns today; the partitioned table's key adds `column`. */
  key: string[];
  /** Where the partitions live: a schema without grants to app roles. */
  partitionSchema: string;
}

export const boundConstraint = (t: PartitionedTable) => `${t.table}_partition_bound`;
export const keyIndex = (t: PartitionedTable) => `${t.table}_partition_key`;
export const defaultPartition = (t: PartitionedTable) => `${t.table}_default`;
const T = (t: PartitionedTable) => quoteQualified(t.schema, t.table);
const MARKER = String.raw`'^edupulse-db managed decl=\w+ def=\w+$'`;

/** PL/pgSQL that runs `body` until it gets its locks within `timeout`, trying `attempts` times. */
export function withLockRetries(
  declarations: string,
  guard: string,
  body: string,
  timeout = '500ms',
  attempts = 60,
): string {
  return `DO $partition$
DECLARE
  attempt int := 0;
${declarations}
BEGIN
${guard}
  PERFORM set_config('lock_timeout', ${ql(timeout)}, true);
  LOOP
    attempt := attempt + 1;
    BEGIN
${body}
      EXIT;
    EXCEPTION WHEN lock_not_available THEN
      IF attempt >= ${attempts} THEN RAISE; END IF;
      PERFORM pg_sleep(0.5);
    END;
  END LOOP;
END
$partition$`;
}

/** Returns early when the table is missing or already partitioned (the step already ran). */
const unlessPartitioned = (t: PartitionedTable) =>
  `  IF (SELECT relkind FROM pg_class WHERE oid = to_regclass(${ql(T(t))})) IS DISTINCT FROM 'r' THEN RETURN; END IF;`;

/** Step 1: the bound, NOT VALID: the first of the month after the newest row or today, plus a month. */
export function addBound(t: PartitionedTable): string {
  return withLockRetries(
    '  v_bound date;',
    `${unlessPartitioned(t)}
  IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = ${ql(T(t))}::regclass AND conname = ${ql(boundConstraint(t))}) THEN RETURN; END IF;
  SELECT (date_trunc('month', greatest(current_date, max(${qi(t.column)}))) + interval '2 months')::date INTO v_bound FROM ${T(t)};`,
    `      EXECUTE format('ALTER TABLE ${T(t)} ADD CONSTRAINT ${qi(boundConstraint(t))} CHECK (${qi(t.column)} < %L::date) NOT VALID', v_bound);`,
  );
}

/** Step 2: VALIDATE (SHARE UPDATE EXCLUSIVE: writers go on). */
export const validateBound = (t: PartitionedTable) =>
  withLockRetries('', unlessPartitioned(t), `      ALTER TABLE ${T(t)} VALIDATE CONSTRAINT ${qi(boundConstraint(t))};`);

/** Step 3a: an invalid key index left by an interrupted build goes first. */
export const dropInvalidKeyIndex = (t: PartitionedTable) =>
  withLockRetries(
    '',
    `${unlessPartitioned(t)}
  IF NOT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(${ql(quoteQualified(t.schema, keyIndex(t)))}) AND NOT indisvalid) THEN RETURN; END IF;`,
    `      DROP INDEX ${quoteQualified(t.schema, keyIndex(t))};`,
  );

/** Step 3b: the partitioned table's key, built beside the old one. */
export const createKeyIndex = (t: PartitionedTable) =>
  `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ${qi(keyIndex(t))} ON ${T(t)} (${[...t.key, t.column].map(qi).join(', ')})`;

/** What the swap (and its reverse) carry from the old table to the new one, read into jsonb variables. */
const CAPTURE_DECLS = `  v_tbl regclass;
  it record;
  v_fp text;
  v_pkname text;
  v_tcomment text;
  v_views jsonb;
  v_trigs jsonb;
  v_idx jsonb;
  v_fks jsonb;
  v_acl jsonb;
  v_seqs jsonb;`;

function capture(t: PartitionedTable, parentOnly: boolean): string {
  return `      v_tbl := ${ql(T(t))}::regclass;
      SELECT jsonb_agg(jsonb_build_object('name', c.oid::regclass::text, 'def', pg_get_viewdef(c.oid),
                       'comment', obj_description(c.oid, 'pg_class'), 'fp', ${VIEW_FINGERPRINT}) ORDER BY c.oid)
        INTO v_views FROM pg_class c
       WHERE c.oid IN (SELECT w.ev_class FROM pg_rewrite w JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
                        WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = v_tbl AND w.ev_class <> v_tbl);
      SELECT jsonb_agg(jsonb_build_object('name', g.tgname, 'def', pg_get_triggerdef(g.oid)) ORDER BY g.tgname) INTO v_trigs
        FROM pg_trigger g WHERE g.tgrelid = v_tbl AND NOT g.tgisinternal${parentOnly ? ' AND g.tgparentid = 0' : ''};
      SELECT jsonb_agg(jsonb_build_object('name', c.relname, 'def', pg_get_indexdef(i.indexrelid),
                       'comment', obj_description(i.indexrelid, 'pg_class'), 'fp', ${INDEX_FINGERPRINT}) ORDER BY c.relname)
        INTO v_idx FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       WHERE i.indrelid = v_tbl AND c.relname <> ${ql(keyIndex(t))}
         AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = v_tbl);
      SELECT jsonb_agg(jsonb_build_object('name', k.conname, 'def', pg_get_constraintdef(k.oid)) ORDER BY k.conname) INTO v_fks
        FROM pg_constraint k WHERE k.conrelid = v_tbl AND k.contype = 'f';
      SELECT jsonb_agg(jsonb_build_object('grantee', CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                       'privilege', a.privilege_type, 'grantable', a.is_grantable))
        INTO v_acl FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = v_tbl AND a.grantee <> c.relowner;
      SELECT jsonb_agg(jsonb_build_object('seq', s.oid::regclass::text, 'col', a.attname)) INTO v_seqs
        FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
       WHERE d.classid = 'pg_class'::regclass AND d.refobjid = v_tbl AND d.deptype IN ('a', 'i');
      SELECT conname INTO v_pkname FROM pg_constraint WHERE conrelid = v_tbl AND contype = 'p';
      v_tcomment := obj_description(v_tbl, 'pg_class');`;
}

/** A marker comment moved to the object's new fingerprint, unless it already showed a hand change. */
const carryComment = (kind: 'INDEX' | 'VIEW', name: string) => `
        IF it.comment IS NOT NULL THEN
          EXECUTE format('COMMENT ON ${kind} %s IS %L', ${name},
            CASE WHEN it.comment ~ ${MARKER} AND substring(it.comment FROM ' def=(\\w+)$') = it.fp
                 THEN regexp_replace(it.comment, ' def=\\w+$', ' def=' || v_fp) ELSE it.comment END);
        END IF;`;

/** Everything the new table takes over from the old one once it stands under the name. */
function restore(t: PartitionedTable, indexDef: string, attach: string): string {
  return `      FOR it IN SELECT * FROM jsonb_to_recordset(v_fks) AS x(name text, def text) LOOP
        EXECUTE format('ALTER TABLE ${T(t)} ADD CONSTRAINT %I %s', it.name, it.def);
      END LOOP;
      FOR it IN SELECT * FROM jsonb_to_recordset(v_idx) AS x(name text, def text, comment text, fp text) LOOP
        EXECUTE ${indexDef};
      END LOOP;
      ${attach}
      FOR it IN SELECT * FROM jsonb_to_recordset(v_trigs) AS x(name text, def text) LOOP EXECUTE it.def; END LOOP;
      FOR it IN SELECT * FROM jsonb_to_recordset(v_seqs) AS x(seq text, col text) LOOP
        EXECUTE format('ALTER SEQUENCE %s OWNED BY ${T(t)}.%I', it.seq, it.col);
      END LOOP;
      FOR it IN SELECT * FROM jsonb_to_recordset(v_acl) AS x(grantee text, privilege text, grantable boolean) LOOP
        EXECUTE format('GRANT %s ON ${T(t)} TO %s%s', it.privilege, it.grantee, CASE WHEN it.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
      END LOOP;
      IF v_tcomment IS NOT NULL THEN EXECUTE format('COMMENT ON TABLE ${T(t)} IS %L', v_tcomment); END IF;
      FOR it IN SELECT * FROM jsonb_to_recordset(v_idx) AS x(name text, def text, comment text, fp text) LOOP
        SELECT ${INDEX_FINGERPRINT} INTO v_fp FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indexrelid = format('%I.%I', ${ql(t.schema)}, it.name)::regclass AND i.indisvalid;
        IF v_fp IS NULL THEN RAISE EXCEPTION 'index %.% is not valid after the conversion', ${ql(t.schema)}, it.name; END IF;${carryComment('INDEX', `format('%I.%I', ${ql(t.schema)}, it.name)`)}
      END LOOP;
      FOR it IN SELECT * FROM jsonb_to_recordset(v_views) AS x(name text, def text, comment text, fp text) LOOP
        EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', it.name, rtrim(it.def, '; '));
        SELECT ${VIEW_FINGERPRINT} INTO v_fp FROM pg_class c WHERE c.oid = it.name::regclass;${carryComment('VIEW', 'it.name')}
      END LOOP;`;
}

/** Step 4: the swap (see the header). */
export function swapIn(t: PartitionedTable): string {
  // format() patterns: the first partition (its name in `v_part`), and the declared indexes made ON ONLY the parent.
  const first = `${qi(t.partitionSchema)}.%I`;
  const named = `format('%I.%I', ${ql(t.schema)}, ${ql(t.table)})`;
  const onOnly = `replace(it.def, ' ON ' || ${named} || ' USING ', ' ON ONLY ' || ${named} || ' USING ')`;
  const attach = `EXECUTE format('ALTER TABLE ${T(t)} ATTACH PARTITION ${first} FOR VALUES FROM (MINVALUE) TO (%L)', v_part, v_bound);
      EXECUTE format('ALTER TABLE ${first} DROP CONSTRAINT ${qi(boundConstraint(t))}', v_part);
      CREATE TABLE ${quoteQualified(t.partitionSchema, defaultPartition(t))} PARTITION OF ${T(t)} DEFAULT;`;
  return withLockRetries(
    `${CAPTURE_DECLS}
  v_bound date;
  v_part text;`,
    unlessPartitioned(t),
    `      LOCK TABLE ${T(t)} IN ACCESS EXCLUSIVE MODE;
      SELECT substring(pg_get_constraintdef(k.oid) FROM '''([0-9-]+)''')::date INTO v_bound FROM pg_constraint k
       WHERE k.conrelid = ${ql(T(t))}::regclass AND k.conname = ${ql(boundConstraint(t))} AND k.convalidated;
      IF v_bound IS NULL THEN RAISE EXCEPTION 'no validated constraint ${boundConstraint(t)} on ${t.schema}.${t.table}: the earlier steps did not run'; END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(${ql(quoteQualified(t.schema, keyIndex(t)))}) AND indisvalid) THEN
        RAISE EXCEPTION 'no valid index ${keyIndex(t)} on ${t.schema}.${t.table}: the earlier steps did not run';
      END IF;
      IF EXISTS (SELECT 1 FROM pg_constraint WHERE confrelid = ${ql(T(t))}::regclass) THEN
        RAISE EXCEPTION 'foreign keys reference ${t.schema}.${t.table}; they would need its whole new key';
      END IF;
      v_part := format('%s_before_%s', ${ql(t.table)}, to_char(v_bound, 'YYYY_MM'));
${capture(t, false)}
      -- The table becomes the first partition, owner-only in the partitions' schema.
      FOR it IN SELECT * FROM jsonb_to_recordset(v_seqs) AS x(seq text, col text) LOOP EXECUTE format('ALTER SEQUENCE %s OWNED BY NONE', it.seq); END LOOP;
      FOR it IN SELECT * FROM jsonb_to_recordset(v_trigs) AS x(name text, def text) LOOP EXECUTE format('DROP TRIGGER %I ON ${T(t)}', it.name); END LOOP;
      EXECUTE format('ALTER TABLE ${T(t)} RENAME TO %I', v_part);
      EXECUTE format('ALTER TABLE ${qi(t.schema)}.%I SET SCHEMA ${qi(t.partitionSchema)}', v_part);
      IF v_pkname IS NOT NULL THEN EXECUTE format('ALTER TABLE ${first} DROP CONSTRAINT %I', v_part, v_pkname); END IF;
      EXECUTE format('ALTER TABLE ${first} ADD CONSTRAINT %I PRIMARY KEY USING INDEX ${qi(keyIndex(t))}', v_part, v_part || '_pkey');
      FOR it IN SELECT * FROM jsonb_to_recordset(v_acl) AS x(grantee text) LOOP EXECUTE format('REVOKE ALL ON ${first} FROM %s', v_part, it.grantee); END LOOP;
      FOR it IN SELECT * FROM jsonb_to_recordset(v_idx) AS x(name text) LOOP EXECUTE format('COMMENT ON INDEX ${qi(t.partitionSchema)}.%I IS NULL', it.name); END LOOP;
      -- The partitioned table under the name.
      EXECUTE format('CREATE TABLE ${T(t)} (LIKE ${first} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING GENERATED INCLUDING IDENTITY) PARTITION BY RANGE (${qi(t.column)})', v_part);
      ALTER TABLE ${T(t)} DROP CONSTRAINT ${qi(boundConstraint(t))};
      EXECUTE format('ALTER TABLE ${T(t)} ADD CONSTRAINT %I PRIMARY KEY (${[...t.key, t.column].map(qi).join(', ')})', coalesce(v_pkname, ${ql(`${t.table}_pkey`)}));
${restore(t, onOnly, attach)}`,
  );
}

/** The reverse, for `migrate down`: one plain table again, rows copied (offline: it holds the table throughout). */
export function unpartition(t: PartitionedTable): string {
  const old = quoteQualified(t.schema, `${t.table}_partitioned`);
  return withLockRetries(
    CAPTURE_DECLS,
    `  IF (SELECT relkind FROM pg_class WHERE oid = to_regclass(${ql(T(t))})) IS DISTINCT FROM 'p' THEN RETURN; END IF;`,
    `      LOCK TABLE ${T(t)} IN ACCESS EXCLUSIVE MODE;
${capture(t, true)}
      FOR it IN SELECT * FROM jsonb_to_recordset(v_views) AS x(name text) LOOP EXECUTE format('DROP VIEW %s', it.name); END LOOP;
      FOR it IN SELECT * FROM jsonb_to_recordset(v_seqs) AS x(seq text) LOOP EXECUTE format('ALTER SEQUENCE %s OWNED BY NONE', it.seq); END LOOP;
      ALTER TABLE ${T(t)} RENAME TO ${qi(`${t.table}_partitioned`)};
      CREATE TABLE ${T(t)} (LIKE ${old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING GENERATED INCLUDING IDENTITY);
      INSERT INTO ${T(t)} SELECT * FROM ${old};
      DROP TABLE ${old};
      EXECUTE format('ALTER TABLE ${T(t)} ADD CONSTRAINT %I PRIMARY KEY (${t.key.map(qi).join(', ')})', coalesce(v_pkname, ${ql(`${t.table}_pkey`)}));
${restore(t, `replace(it.def, ' ON ONLY ', ' ON ')`, '')}`,
  );
}

/** After the reverse: the partitions' schema goes when nothing is left in it. */
export const dropPartitionSchema = (t: PartitionedTable) =>
  `DO $partition$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = to_regnamespace(${ql(t.partitionSchema)})) THEN
    DROP SCHEMA IF EXISTS ${qi(t.partitionSchema)};
  END IF;
END $partition$`;
