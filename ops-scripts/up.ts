// npm run up: bring the local stack up (idempotent).
import { command, outcome } from './lib/cli.ts';
import { up } from './lib/local-stack.ts';
import { resolveStack } from './lib/stack-context.ts';

const usage = `Usage: edupulse-db up [--no-redis] [--json] [--verbose]

Brings up the local stack from the host's PostgreSQL and Redis binaries
(installing them with apt-get when missing and run as root): initdb, the
settings of infra/settings.ts, PostgreSQL on ${'$'}EDUPULSE_PG_PORT (54329) and
Redis on ${'$'}EDUPULSE_REDIS_PORT (63799), then the desired state (database, roles,
migrations, indexes, views). On a running stack it changes nothing.

  --no-redis   leave Redis alone
  --json       print the steps as JSON
  --verbose    log every command run`;

await command({ name: 'up', usage, boolean: ['redis'], defaults: { redis: true } }, async ({ args, logger }) => {
  const started = performance.now();
  const ctx = await resolveStack({ logger, install: true });
  const result = await up(ctx, { redis: args.redis !== false });
  const seconds = (performance.now() - started) / 1000;
  return outcome({ ...result, seconds }, () =>
    result.changed
      ? `stack is up (${seconds.toFixed(1)}s); state in ${ctx.paths.root}`
      : `stack is already up; nothing to do (${seconds.toFixed(1)}s)`,
  );
});
