// npm run cache:invalidate: drop the cached predictions (after a restore).
import { command, outcome } from './lib/cli.ts';
import { connections } from './lib/connection.ts';
import { invalidatePredictions } from './lib/cache-invalidate.ts';
import { settingsFromEnv } from './lib/settings.ts';

const usage = `Usage: edupulse-db cache:invalidate [--json]

Removes every prediction:* key from Redis with SCAN and UNLINK in batches,
leaving other keys alone (never FLUSHALL or FLUSHDB), and says how many went.
Run it after a real restore: cached predictions no longer match the database.
Targets REDIS_URL when set, the local stack's Redis otherwise.`;

await command({ name: 'cache:invalidate', usage }, async () => {
  const prefix = settingsFromEnv(process.env).redis.cacheKeyPrefix;
  const removed = await invalidatePredictions(connections().redis, prefix);
  return outcome({ removed, prefix }, () => `removed ${removed} ${prefix}* keys`);
});
