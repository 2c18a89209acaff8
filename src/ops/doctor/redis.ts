import type { Redis as RedisClient } from 'ioredis';
import { endpointOf, Unreachable } from './context.ts';
import { type DoctorCheck, fail, ok, warn } from './types.ts';

/** CONFIG GET, or undefined when the server refuses it (managed services often rename or block CONFIG). */
async function configGet(redis: RedisClient, name: string): Promise<string | undefined> {
  try {
    const reply = (await redis.config('GET', name)) as unknown as string[];
    return reply[1];
  } catch {
    return undefined;
  }
}

/** INFO <section> as key → value, or an empty map when refused. */
async function info(redis: RedisClient, section: string): Promise<Map<string, string>> {
  try {
    const text = await redis.info(section);
    const fields = new Map<string, string>();
    for (const line of text.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1));
    }
    return fields;
  } catch {
    return new Map();
  }
}

const CANNOT_READ = 'cannot read persistence settings: the server refuses CONFIG';
const PROVIDER_HINT = "make sure the provider's persistence (AOF) option is on";

export function redisChecks(): DoctorCheck[] {
  return [
    {
      id: 'redis.reachable',
      run: async (ctx) => {
        let redis: RedisClient;
        try {
          redis = await ctx.redis();
        } catch (error) {
          if (error instanceof Unreachable) return fail(error.message, error.hint);
          throw error;
        }
        const pong = await redis.ping();
        const version = (await info(redis, 'server')).get('redis_version');
        const where = ctx.redisUrl ? endpointOf(ctx.redisUrl) : '(unknown)';
        return pong === 'PONG'
          ? ok(`Redis ${version ?? '(version hidden)'} at ${where}`)
          : fail(`Redis at ${where} answered ${JSON.stringify(pong)} to PING`);
      },
    },
    {
      id: 'redis.aof',
      run: async (ctx) => {
        const redis = await ctx.redis();
        const persistence = await info(redis, 'persistence');
        // INFO is often allowed where CONFIG is not, and says whether AOF is on as well.
        const appendonly =
          (await configGet(redis, 'appendonly')) ??
          (persistence.has('aof_enabled')
            ? persistence.get('aof_enabled') === '1'
              ? 'yes'
              : 'no'
            : undefined);
        if (appendonly === undefined) return warn(`${CANNOT_READ} or INFO`, PROVIDER_HINT);
        if (appendonly !== 'yes') {
          return fail(
            'AOF is off: the queue and idempotency keys written since the last RDB save are lost in a crash',
            'CONFIG SET appendonly yes, and appendonly yes in redis.conf so that it stays on',
          );
        }
        if (persistence.get('aof_last_write_status') === 'err') {
          return fail(
            'AOF is on but its last write failed (disk full or read-only?): Redis refuses writes until it recovers',
            'look at the Redis log and the free space of its data folder',
          );
        }
        return ok('AOF is on');
      },
    },
    {
      id: 'redis.appendfsync',
      run: async (ctx) => {
        const redis = await ctx.redis();
        const policy = await configGet(redis, 'appendfsync');
        if (policy === undefined) return warn(CANNOT_READ, PROVIDER_HINT);
        if (policy === 'no') {
          return warn(
            'appendfsync is no: the kernel decides when the AOF reaches the disk, so about 30 s of writes can be lost',
            'CONFIG SET appendfsync everysec (REDIS_APPENDFSYNC for the embedded Redis)',
          );
        }
        return ok(
          policy === 'always'
            ? 'appendfsync is always: every write is fsynced'
            : `appendfsync is ${policy}: at most about one second of writes is lost in a power cut`,
        );
      },
    },
  ];
}
