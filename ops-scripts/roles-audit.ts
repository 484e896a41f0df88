// npm run roles:audit: every difference between the live roles and grants
// and roles/declarations.ts, both ways. Exit 1 on drift.
import { command } from './lib/cli.ts';
import { withClient } from './lib/db.ts';
import { auditRoles } from '../roles/engine/index.ts';
import { rolesTarget } from './lib/roles/target.ts';

const usage = `Usage: edupulse-db roles:audit [--json]

Reads pg_roles, pg_auth_members, the ACLs of the database, schemas, tables,
views and sequences, and pg_default_acl, and reports every difference from
roles/declarations.ts: what is missing and what a managed role (or PUBLIC)
holds beyond its declaration, each with the statement that fixes it.
Exit 0 when clean, 1 on drift.`;

await command({ name: 'roles:audit', usage }, async ({ json, out }) => {
  const diffs = await withClient(rolesTarget().pg, (c) => auditRoles(c));
  if (json) out(JSON.stringify({ clean: diffs.length === 0, differences: diffs }, null, 2));
  else if (!diffs.length) out('roles and grants are as declared');
  else out(diffs.map((d) => `${d.kind.padEnd(7)} ${d.role}: ${d.what}\n        fix: ${d.fix};`).join('\n'));
  return diffs.length ? 1 : 0;
});
