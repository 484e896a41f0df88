// latest_predictions' insert trigger body (migration latest-predictions-one-statement)
// by exact string where it differs from the body it builds on; the whole trigger is
// proven on a real server (test/integration/risk-summary.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { INSERT_IN_PLACE } from '../../migrations/1764028800010_latest-predictions-batch.ts';
import { ONE_STATEMENT } from '../../migrations/1764028800012_latest-predictions-one-statement.ts';
import { syncBatch, WITH_HIGH } from '../../migrations/1764028800013_latest-predictions-high.ts';

const [head, rest] = ONE_STATEMENT.split('BEGIN\n') as [string, string];

test('the batch is applied first, in student order, in one UPDATE, and the trigger is done when every row was', () => {
  assert.ok(head.endsWith('  in_batch bigint;\n  applied bigint;\n'), head);
  assert.ok(
    rest.startsWith(`  UPDATE edupulse_derived.latest_predictions l
     SET prediction_id = n.id, prediction_date = n.prediction_date, risk_score = n.risk_score,
         risk_category = n.risk_category
    FROM (SELECT * FROM new_rows ORDER BY student_id) n
   WHERE l.student_id = n.student_id AND (n.prediction_date, n.id) > (l.prediction_date, l.prediction_id);
  GET DIAGNOSTICS applied = ROW_COUNT;
  SELECT count(*) INTO in_batch FROM new_rows;
  -- Each row of the batch changed a different student's row: nothing left (the nightly batch).
  IF applied = in_batch THEN RETURN NULL; END IF;
`),
    rest,
  );
});

test('otherwise the previous body runs on the rows the UPDATE did not apply', () => {
  assert.ok(
    ONE_STATEMENT.includes(
      'FROM new_rows x WHERE NOT EXISTS (SELECT 1 FROM edupulse_derived.latest_predictions a WHERE a.student_id = x.student_id AND a.prediction_id = x.id) ORDER BY x.student_id, x.prediction_date DESC, x.id DESC),',
    ),
  );
  // The rest of it unchanged: from the update of the greater rows to the insert of new students.
  const tail = (body: string) => body.slice(body.indexOf('       u AS (UPDATE'));
  assert.is(
    tail(ONE_STATEMENT),
    tail(INSERT_IN_PLACE).replace(
      '-- Every student updated (the nightly batch): nobody new to the table, nothing more to do.',
      '-- Every student left was updated: nobody is new to the table.',
    ),
  );
});

test('latest_high: each way out of the insert trigger first copies the rows it applied, and there are two', () => {
  assert.ok(
    WITH_HIGH.includes(`  IF applied = in_batch THEN\n${syncBatch(true, '    ')}    RETURN NULL;\n  END IF;\n`),
    'the nightly batch: every row of it, no join to find which',
  );
  assert.ok(
    WITH_HIGH.endsWith(`  END IF;\n${syncBatch(false, '  ')}  RETURN NULL;\nEND`),
    'the rest: the rows applied',
  );
  assert.is(WITH_HIGH.split('RETURN NULL').length, 3);
  assert.ok(syncBatch(false, '').includes('a.prediction_id = x.id'), 'the rest: joined to what the table now holds');
  // Apart from the copies and the test turned round (its block closed before them), the body is the previous one.
  const without = WITH_HIGH.replace(syncBatch(true, '    '), '').replace(syncBatch(false, '  '), '');
  const squeeze = (body: string) => body.replace(/\s+/g, ' ');
  assert.is(
    squeeze(without),
    squeeze(
      ONE_STATEMENT.replace(
        '-- Every student left was updated: nobody is new to the table.\n  IF updated = students_in_batch THEN RETURN NULL; END IF;',
        '-- Some student left was not updated: new to the table, locked and inserted.\n  IF updated <> students_in_batch THEN',
      ).replace('  END IF;\n  RETURN NULL;\nEND', '  END IF;\n  END IF;\n  RETURN NULL;\nEND'),
    ),
  );
});

test.run();
