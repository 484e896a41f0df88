// npm run roles:apply: make roles and grants match roles/declarations.ts.
import { command } from './lib/cli.ts';
import { withClient } from './lib/db.ts';
import { applyRoles, auditRoles } from '../roles/engine/index.ts';
import { rolesTarget } from './lib/roles/target.ts';

const usage = `Usage: edupulse-db roles:apply [--dry-run] [--json]

Creates or alters every declared role (attributes, connection limit,
memberships), grants what is declared and revokes what a managed role holds
beyond it, sets default privileges, and gives each login role its password
from the secrets file (generated when new; sent as a SCRAM verifier). Running
it again changes nothing.

  --dry-run   print the statements that would run; change nothing`;

await command({ name: 'roles:apply', usage, boolean: ['dry-run'] }, async ({ args, json, out }) => {
  const target = rolesTarget();
  await withClient(target.pg, async (c) => {
    if (args['dry-run']) {
      const diffs = await auditRoles(c);
      const statements = [...new Set(diffs.map((d) => d.fix))];
      out(json ? JSON.stringify({ statements }, null, 2) : statements.length ? statements.map((s) => `${s};`).join('\n') : '-- nothing to do');
      return;
    }
    const result = await applyRoles(c, target.passwords);
    out(json ? JSON.stringify(result, null, 2)
      : result.statements.length ? `${result.statements.map((s) => `${s};`).join('\n')}\nroles applied: ${result.statements.length} statements`
      : 'roles are as declared; nothing to do');
  });
});
