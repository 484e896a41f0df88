// npm run status: each server's state, version, address and key settings.
import { command, outcome } from './lib/cli.ts';
import { connections } from './lib/connection.ts';
import { resolveStack } from './lib/stack-context.ts';
import { formatStatus, stackStatus } from './lib/stack-status.ts';

const usage = `Usage: edupulse-db status [--json]

Prints the state of PostgreSQL and Redis (running, stopped, unreachable), their
versions, connection strings without passwords, and the key settings read back
from the live servers (SHOW wal_level, archive_mode, archive_library, ...).
Targets DATABASE_URL / REDIS_URL when set, the local stack otherwise.
Exit 0 when both run, 1 otherwise.`;

await command({ name: 'status', usage }, async ({ logger }) => {
  const conn = connections();
  const ctx = conn.source === 'local-stack' ? await resolveStack({ logger }) : undefined;
  const status = await stackStatus(conn, ctx);
  return outcome(status, formatStatus, status.postgres.state === 'running' && status.redis.state === 'running' ? 0 : 1);
});
