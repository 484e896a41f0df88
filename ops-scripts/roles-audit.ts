// npm run roles:audit: every difference between the live roles and grants
// and roles/declarations.ts, both ways. Exit 1 on drift.
import { command, outcome } from './lib/cli.ts';
import { withClient } from './lib/db.ts';
import { auditRoles } from '../roles/engine/index.ts';
import { rolesTarget } from './lib/roles/target.ts';

const usage = `Usage: edupulse-db roles:audit [--json]

Reads pg_roles, pg_auth_members, the ACLs of the database, schemas, tables,
views and sequences, and pg_default_acl, and reports every difference from
roles/declarations.ts: what is missing and what a managed role (or PUBLIC)
holds beyond its declaration, each with the statement that fixes it.
Exit 0 when clean, 1 on drift.`;

await command({ name: 'roles:audit', usage }, async () => {
  const diffs = await withClient(rolesTarget().pg, (c) => auditRoles(c));
  return outcome(
    { clean: diffs.length === 0, differences: diffs },
    () =>
      !diffs.length
        ? 'roles and grants are as declared'
        : diffs.map((d) => `${d.kind.padEnd(7)} ${d.role}: ${d.what}\n        fix: ${d.fix};`).join('\n'),
    diffs.length ? 1 : 0,
  );
});
