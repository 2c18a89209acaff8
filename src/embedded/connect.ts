import type { Config } from '../config/config.ts';
import { streamsWal } from '../config/protection.ts';
import { ensureDatabase } from '../db/connection.ts';
import { checkDatabaseTls } from '../db/tls.ts';
import { checkRedisSetup } from '../lib/redis-check.ts';
import { EmbeddedPostgres } from './postgres.ts';
import { EmbeddedRedis } from './redis.ts';

export interface ServiceEndpoints {
  databaseUrl: string;
  redisUrl: string;
  /** Which embedded services this call started itself (and `release` stops). */
  started: Array<'postgres' | 'redis'>;
  release(): Promise<void>;
}

export function embeddedPostgres(config: Config): EmbeddedPostgres {
  return new EmbeddedPostgres({
    root: config.dataDir,
    user: config.postgres.user,
    database: config.postgres.database,
    port: config.postgres.port,
    settings: {
      // A receiver that is down may hold back this much WAL, then its slot is given up (the stream has a gap).
      max_slot_wal_keep_size: `${Math.max(64, Math.floor(config.backup.slotMaxWalBytes / 1024 ** 2))}MB`,
      // Synchronous mode: a commit returns once the WAL receiver (trendgen protect) has it on the backup disk.
      ...(streamsWal(config) && config.backup.sync ? { synchronous_standby_names: 'trendgen_wal' } : {}),
    },
  });
}

export function embeddedRedis(config: Config): EmbeddedRedis {
  return new EmbeddedRedis({
    root: config.dataDir,
    port: config.redis.port,
    appendfsync: config.redis.appendfsync,
  });
}

/**
 * The URLs every command uses. With DATABASE_URL / REDIS_URL (or REDIS_SENTINELS) set they are used as they are,
 * a Redis whose TLS certificate or password is wrong refused in one sentence; otherwise the embedded instances
 * under DATA_DIR are found running (started by `up`) or started here for the duration of the command.
 */
export async function connectServices(
  config: Config,
  need: { postgres?: boolean; redis?: boolean } = { postgres: true, redis: true },
): Promise<ServiceEndpoints> {
  const started: Array<'postgres' | 'redis'> = [];
  const stops: Array<() => Promise<void>> = [];
  let databaseUrl = config.databaseUrl ?? '';
  let redisUrl = config.redisUrl ?? '';
  try {
    // A wrong CA or a certificate for another host name: one sentence now, not a driver's error later.
    if (need.postgres && config.databaseUrl) await checkDatabaseTls(config.databaseUrl);
    if (need.redis && config.redisUrl) await checkRedisSetup(config.redisUrl);
    if (need.postgres && !config.databaseUrl) {
      const pg = embeddedPostgres(config);
      let running = pg.findRunning();
      if (!running) {
        running = await pg.start();
        started.push('postgres');
        stops.push(() => pg.stop());
      }
      await ensureDatabase(pg.url(running.port, 'postgres'), config.postgres.database);
      databaseUrl = running.url;
    }
    if (need.redis && !config.redisUrl) {
      const redis = embeddedRedis(config);
      let running = await redis.findRunning();
      if (!running) {
        running = await redis.start();
        started.push('redis');
        stops.push(() => redis.stop());
      }
      redisUrl = running.url;
    }
  } catch (error) {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    throw error;
  }
  return {
    databaseUrl,
    redisUrl,
    started,
    release: async () => {
      for (const stop of stops.reverse()) await stop();
    },
  };
}
