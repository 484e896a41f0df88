// npm run down: stop the local stack (fast shutdown). Data stays.
import { command, outcome } from './lib/cli.ts';
import { down } from './lib/local-stack.ts';
import { resolveStack } from './lib/stack-context.ts';

const usage = `Usage: edupulse-db down [--json]

Stops the local stack's PostgreSQL (fast shutdown) and Redis. Data, backups
and secrets stay in the state directory; \`up\` starts them again.`;

await command({ name: 'down', usage }, async ({ logger }) => {
  const ctx = await resolveStack({ logger });
  const steps = await down(ctx);
  return outcome({ steps }, () =>
    steps.every((s) => s.status === 'skipped') ? 'stack was not running; nothing to do' : 'stack stopped',
  );
});
