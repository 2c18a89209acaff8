import type { Redis } from 'ioredis';
import { type BlobStore, createBlobStore, S3BlobStore } from '../../blobstore/index.ts';
import type { Config, S3Settings } from '../../config/config.ts';
import { openDatabase, type Sql } from '../../db/connection.ts';
import { checkDatabaseTls, DatabaseTlsError } from '../../db/tls.ts';
import { embeddedPostgres, embeddedRedis } from '../../embedded/connect.ts';
import { parseConnectionUrl } from '../../lib/connection-url.ts';
import { redisSetupProblem } from '../../lib/redis-check.ts';
import { createRedisClient, describeRedis } from '../../lib/redis-client.ts';
import { type DoctorContext, errorMessage, NotChecked } from './types.ts';

/** A dependency that cannot be reached: FAIL for its own check, "not checked" for the ones that need it. */
export class Unreachable extends NotChecked {
  override name = 'Unreachable';
  constructor(
    /** `postgres` or `redis`: its `<service>.reachable` check tells the whole story. */
    readonly service: 'postgres' | 'redis',
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** Rejects after `ms`; the work itself is abandoned, and the caller's cleanup closes what it opened. */
export async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} gave no answer within ${seconds(ms)}`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export const seconds = (ms: number) => `${Number((ms / 1000).toFixed(1))} s`;

/** host:port of a URL, without user or password; for Redis through Sentinels, the master's name and the Sentinels. */
export function endpointOf(url: string): string {
  if (/^rediss?\+sentinel:/i.test(url)) return describeRedis(url).replace(/^the Redis /, '');
  try {
    const parsed = parseConnectionUrl(url, { multiHost: true });
    const port = parsed.scheme.startsWith('redis') ? 6379 : 5432;
    return parsed.hosts.map((host) => (/:\d+$/.test(host) ? host : `${host}:${port}`)).join(',');
  } catch {
    return '(unparsable URL)';
  }
}

export interface OwnedContext extends DoctorContext {
  close(): Promise<void>;
}

/**
 * Connections are opened lazily and once, so every check that needs PostgreSQL shares one attempt.
 * Connecting gets a shorter budget than a check, so a check waiting on a dead server still has time
 * to say "not checked" instead of timing out itself.
 */
export function createContext(config: Config, timeoutMs: number, now: Date): OwnedContext {
  const connectMs = Math.max(200, Math.floor(timeoutMs * 0.8));
  let sql: Sql | undefined;
  let redis: Redis | undefined;
  let database: Promise<Sql> | undefined;
  let redisClient: Promise<Redis> | undefined;

  const ctx: OwnedContext = {
    config,
    timeoutMs,
    now,
    database() {
      database ??= (async () => {
        const url = findDatabaseUrl(config);
        ctx.databaseUrl = url;
        try {
          await checkDatabaseTls(url, connectMs);
          sql = openDatabase(url, { max: 3 });
          await withTimeout(sql`select 1`, connectMs, `PostgreSQL at ${endpointOf(url)}`);
        } catch (error) {
          if (error instanceof DatabaseTlsError) throw new Unreachable('postgres', error.message);
          throw new Unreachable(
            'postgres',
            `PostgreSQL at ${endpointOf(url)} is unreachable: ${errorMessage(error)}`,
            config.databaseUrl
              ? 'check DATABASE_URL and that the server runs'
              : 'start the services with: trendgen up',
          );
        }
        return sql;
      })();
      return database;
    },
    redis() {
      redisClient ??= (async () => {
        const url = config.redisUrl ?? (await findEmbeddedRedisUrl(config));
        ctx.redisUrl = url;
        redis = createRedisClient(url, {
          lazyConnect: true,
          connectTimeout: connectMs,
          // Fail at once instead of queueing and retrying: doctor wants an answer, not resilience.
          maxRetriesPerRequest: 0,
          retryStrategy: () => null,
          enableOfflineQueue: false,
          // The ready check sends INFO, which some managed services restrict.
          enableReadyCheck: false,
          sentinelRetryStrategy: () => null,
        });
        redis.on('error', () => {});
        try {
          await withTimeout(redis.connect(), connectMs, `Redis at ${endpointOf(url)}`);
        } catch (error) {
          const problem = redisSetupProblem(error, url);
          if (problem) throw new Unreachable('redis', problem);
          throw new Unreachable(
            'redis',
            `Redis at ${endpointOf(url)} is unreachable: ${errorMessage(error)}`,
            config.redisUrl
              ? 'check REDIS_URL and that the server runs'
              : 'start the services with: trendgen up',
          );
        }
        return redis;
      })();
      return redisClient;
    },
    async close() {
      redis?.disconnect();
      // Every check has finished: what is still open is abandoned (a hung handshake), not in use.
      await sql?.end({ timeout: 0 }).catch(() => {});
    },
  };
  return ctx;
}

/** Doctor looks for the embedded PostgreSQL but never starts one: a health check must not change what it checks. */
function findDatabaseUrl(config: Config): string {
  if (config.databaseUrl) return config.databaseUrl;
  let running: ReturnType<ReturnType<typeof embeddedPostgres>['findRunning']>;
  try {
    running = embeddedPostgres(config).findRunning();
  } catch (error) {
    throw new Unreachable(
      'postgres',
      `the embedded PostgreSQL under ${config.dataDir} cannot be inspected: ${errorMessage(error)}`,
      'start the services with: trendgen up',
    );
  }
  if (!running) {
    throw new Unreachable(
      'postgres',
      `PostgreSQL is not running (DATABASE_URL is unset and no embedded server runs under ${config.dataDir})`,
      'start the services with: trendgen up, or set DATABASE_URL',
    );
  }
  return running.url;
}

async function findEmbeddedRedisUrl(config: Config): Promise<string> {
  const running = await embeddedRedis(config)
    .findRunning()
    .catch(() => undefined);
  if (!running) {
    throw new Unreachable(
      'redis',
      `Redis is not running (REDIS_URL is unset and no embedded server runs under ${config.dataDir})`,
      'start the services with: trendgen up, or set REDIS_URL',
    );
  }
  return running.url;
}

/**
 * The store a URL names, with few retries for S3: the vault's default of five attempts with backoff
 * would outlast the check's timeout and turn "connection refused" into "no answer".
 */
export function probeStore(url: string, s3: S3Settings): BlobStore {
  const store = createBlobStore(url, s3);
  if (!(store instanceof S3BlobStore)) return store;
  return new S3BlobStore({ bucket: store.bucket, prefix: store.prefix, settings: s3, maxAttempts: 2 });
}
