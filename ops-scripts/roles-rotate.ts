// npm run roles:rotate -- <role>: a new password for one login role.
import { command } from './lib/cli.ts';
import { withClient } from './lib/db.ts';
import { badInput } from './lib/errors.ts';
import { rotatePassword } from '../roles/engine/index.ts';
import { rolesTarget } from './lib/roles/target.ts';
import { declarations } from '../roles/declarations.ts';
import { readSecrets } from './lib/secrets.ts';
import { resolveStack } from './lib/stack-context.ts';
import { refreshReplicationPassfile, replicationPassfile } from './lib/standby.ts';

const usage = `Usage: edupulse-db roles:rotate <role>

Generates a new password for a declared login role, sets it (as a SCRAM
verifier) and rewrites the secrets file atomically. The old password stops
working at once; the new one is never printed.`;

await command(
  { name: 'roles:rotate', usage, positionals: { min: 1, max: 1, name: 'role name' } },
  async ({ args, out, logger }) => {
    const role = args._[0];
    if (typeof role !== 'string' || args._.length !== 1)
      throw badInput('takes exactly one role name', 'e.g. npm run roles:rotate -- app_user');
    const target = rolesTarget();
    await withClient(target.pg, (c) => rotatePassword(c, target.passwords, role));
    out(`password of ${role} rotated; the secrets file holds the new one`);
    // The standbys read the replication login's password from their own passfile when they connect.
    if (role === declarations.replicator && !process.env.DATABASE_URL) {
      const stack = await resolveStack({ logger });
      const secrets = readSecrets(stack.paths.secretsFile);
      if (secrets && refreshReplicationPassfile(stack, secrets))
        out(`the standbys' passfile (${replicationPassfile(stack)}) holds the new one too`);
    }
  },
);
