// npm run diagnose: findings with suggested actions.
import { command } from './lib/cli.ts';
import { connections } from './lib/connection.ts';
import { diagnose } from './lib/maintenance/diagnose.ts';
import { indexes } from '../views/index.ts';

const usage = `Usage: edupulse-db diagnose [--json]

Top queries from pg_stat_statements (by total and by mean time), lock waits as
blocking trees, idle-in-transaction sessions, bloat estimates per table and
btree index (from statistics), unused and duplicate indexes; each finding with
a suggested action. Changes nothing.`;

await command({ name: 'diagnose', usage }, async ({ json, out }) => {
  const pg = { ...connections().pg, options: '-c lock_timeout=3s -c statement_timeout=60s' };
  const findings = await diagnose(pg, { ...pg, database: 'postgres' }, indexes.map((i) => i.name));
  if (json) { out(JSON.stringify({ findings }, null, 2)); return; }
  if (!findings.length) { out('no findings'); return; }
  let section = '';
  for (const f of findings) {
    if (f.section !== section) { section = f.section; out(`\n== ${section}`); }
    out(`- ${f.object}\n  ${f.detail.split('\n').join('\n  ')}\n  suggestion: ${f.suggestion}`);
  }
});
