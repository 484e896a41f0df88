// npm run diagnose: findings with suggested actions.
import { command, outcome } from './lib/cli.ts';
import { connections } from './lib/connection.ts';
import { diagnose } from './lib/maintenance/diagnose.ts';
import { indexes } from '../views/index.ts';

const usage = `Usage: edupulse-db diagnose [--json]

Top queries from pg_stat_statements (by total and by mean time), lock waits as
blocking trees, idle-in-transaction sessions, bloat estimates per table and
btree index (from statistics), unused and duplicate indexes; each finding with
a suggested action. Changes nothing.`;

await command({ name: 'diagnose', usage }, async () => {
  const pg = { ...connections().pg, options: '-c lock_timeout=3s -c statement_timeout=60s' };
  const findings = await diagnose(
    pg,
    { ...pg, database: 'postgres' },
    indexes.map((i) => i.name),
  );
  return outcome({ findings }, () => {
    if (!findings.length) return 'no findings';
    return findings
      .map(
        (f, i) =>
          `${f.section !== findings[i - 1]?.section ? `\n== ${f.section}\n` : ''}` +
          `- ${f.object}\n  ${f.detail.split('\n').join('\n  ')}\n  suggestion: ${f.suggestion}`,
      )
      .join('\n');
  });
});
