// npm run cache:invalidate: drop the cached predictions (after a restore).
import { command } from './lib/cli.ts';
import { connections } from './lib/connection.ts';
import { invalidatePredictions } from './lib/cache-invalidate.ts';
import { settingsFromEnv } from './lib/stack-context.ts';

const usage = `Usage: edupulse-db cache:invalidate [--json]

Removes every prediction:* key from Redis with SCAN and UNLINK in batches,
leaving other keys alone (never FLUSHALL or FLUSHDB), and says how many went.
Run it after a real restore: cached predictions no longer match the database.
Targets REDIS_URL when set, the local stack's Redis otherwise.`;

await command({ name: 'cache:invalidate', usage }, async ({ json, out }) => {
  const prefix = settingsFromEnv(process.env).redis.cacheKeyPrefix;
  const removed = await invalidatePredictions(connections().redis, prefix);
  out(json ? JSON.stringify({ removed, prefix }) : `removed ${removed} ${prefix}* keys`);
});
