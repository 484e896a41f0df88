// After a real restore the cached predictions in Redis are stale: remove the
// prediction:* keys with SCAN and UNLINK in batches (never FLUSHALL/FLUSHDB,
// which would take every other key with them).
import type { RedisTarget } from './connection.ts';
import { failed } from './errors.ts';
import { redisClient } from './redis.ts';

export async function invalidatePredictions(target: RedisTarget, prefix: string, batch = 1000): Promise<number> {
  const client = await redisClient({ host: target.host, port: target.port, password: target.password ?? '' });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    throw failed(
      `could not connect to Redis at ${target.host}:${target.port}: ${(err as Error).message}`,
      "`npm run status` shows the stack's servers and `npm run up` starts them; or point REDIS_URL at the running one",
    );
  }
  let removed = 0;
  try {
    // A glob's special characters in the prefix are escaped, so only that literal prefix matches.
    const match = `${prefix.replace(/([*?[\]\\])/g, '\\$1')}*`;
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', match, 'COUNT', batch);
      cursor = next;
      if (keys.length) removed += await client.unlink(...keys);
    } while (cursor !== '0');
    return removed;
  } finally {
    client.disconnect();
  }
}
