// npm run roles:apply: make roles and grants match roles/declarations.ts.
import { command, outcome } from './lib/cli.ts';
import { withClient } from './lib/db.ts';
import { applicable, applyRoles, auditRoles } from '../roles/engine/index.ts';
import { rolesTarget } from './lib/roles/target.ts';

const usage = `Usage: edupulse-db roles:apply [--dry-run] [--json]

Creates or alters every declared role (attributes, connection limit,
memberships), grants what is declared and revokes what a managed role holds
beyond it, sets default privileges, and gives each login role its password
from the secrets file (generated when new; sent as a SCRAM verifier). Running
it again changes nothing.

  --dry-run           print the statements that would run; change nothing
  --drop-undeclared   also drop login roles (and roles with privileges here)
                      that nobody declared: destructive, so never without it;
                      roles:audit reports them either way`;

await command({ name: 'roles:apply', usage, boolean: ['dry-run', 'drop-undeclared'] }, async ({ args, logger }) => {
  const target = rolesTarget();
  const opts = { dropUndeclared: Boolean(args['drop-undeclared']) };
  return withClient(target.pg, async (c) => {
    if (args['dry-run']) {
      const diffs = await auditRoles(c);
      const statements = [...new Set(applicable(diffs, opts).map((d) => d.fix))];
      const held = diffs
        .filter((d) => !applicable([d], opts).length)
        .map((d) => `-- not without --drop-undeclared: ${d.role}: ${d.what}`);
      return outcome({ statements, notApplied: held }, () =>
        [...(statements.length ? statements.map((s) => `${s};`) : ['-- nothing to do']), ...held].join('\n'),
      );
    }
    const undeclared = opts.dropUndeclared ? [] : (await auditRoles(c)).filter((d) => d.destructive);
    const result = await applyRoles(c, target.passwords, undefined, opts);
    for (const d of undeclared)
      logger.log({ event: 'warn', message: `left in place (give --drop-undeclared to drop): ${d.role}: ${d.what}` });
    return outcome(result, () =>
      result.statements.length
        ? `${result.statements.map((s) => `${s};`).join('\n')}\nroles applied: ${result.statements.length} statements`
        : 'roles are as declared; nothing to do',
    );
  });
});
