import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { createBlobStore } from '../blobstore/index.ts';
import { adminTokenPath, type Config } from '../config/config.ts';
import { openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { connectServices } from '../embedded/connect.ts';
import { createQueue, queueConnection } from '../generation/queue.ts';
import { ensureSecretFile } from '../lib/files.ts';
import type { Liveness } from '../lib/liveness.ts';
import { createRedisClient } from '../lib/redis-client.ts';
import { ObjectStore } from '../objects/store.ts';
import { createMetrics } from '../ops/metrics.ts';
import { watchPrompts } from '../prompts/index.ts';
import { objectStoreSyncOptions } from '../vault/stream/objects-sync.ts';
import { buildServer } from './server.ts';

export interface RunningApi {
  app: FastifyInstance;
  url: string;
  adminTokenFile: string | undefined;
  close(): Promise<void>;
}

/** ADMIN_TOKEN, or one generated into DATA_DIR/secrets/admin-token: the API never runs open. */
export function resolveAdminToken(config: Config): { token: string; file: string | undefined } {
  if (config.adminToken) return { token: config.adminToken, file: undefined };
  const file = adminTokenPath(config);
  return { token: ensureSecretFile(file, 32), file };
}

/** Everything `trendgen serve` runs: database, Redis, object store, prompt watcher and the HTTP server. */
export async function startApi(config: Config, logger: Logger, liveness?: Liveness): Promise<RunningApi> {
  const services = await connectServices(config);
  const sql = openDatabase(services.databaseUrl, { max: 20 });
  const closers: Array<() => Promise<unknown>> = [() => services.release(), () => sql.end({ timeout: 10 })];
  const closeAll = async () => {
    for (const close of closers.reverse())
      await close().catch((error) => logger.error({ err: error }, 'close failed'));
  };
  try {
    const migration = await migrate(sql, {
      onWait: () => logger.info('waiting for another process to finish migrating'),
    });
    if (migration.applied.length)
      logger.info({ applied: migration.applied.map((m) => m.name) }, 'database migrated');
    const redis = createRedisClient(services.redisUrl, {
      maxRetriesPerRequest: 2,
      enableOfflineQueue: true,
      lazyConnect: false,
    });
    redis.on('error', (error) => logger.warn({ err: error }, 'redis connection error'));
    closers.push(async () => redis.quit().catch(() => redis.disconnect()));
    const queueRedis = queueConnection(services.redisUrl);
    queueRedis.on('error', () => {});
    const queue = createQueue(queueRedis);
    closers.push(async () => {
      await queue.close();
      queueRedis.disconnect();
    });
    const blobs = createBlobStore(config.storageUrl, config.s3);
    const spool = path.join(config.dataDir, 'tmp', 'uploads');
    const objects = new ObjectStore(sql, blobs, spool, objectStoreSyncOptions(config, sql, blobs));
    const admin = resolveAdminToken(config);
    const watcher = watchPrompts(sql, config.promptsDir, {
      rescanSeconds: config.promptsRescanSeconds,
      maxBytes: config.limits.maxPromptBytes,
      logger,
    });
    closers.push(() => watcher.close());
    await watcher.ready;
    const app = await buildServer({
      config,
      sql,
      redis,
      queue,
      urls: { database: services.databaseUrl, redis: services.redisUrl },
      objects,
      tokens: { admin: admin.token, client: config.apiToken },
      metrics: createMetrics(sql, config),
      logger,
      ...(liveness ? { liveness } : {}),
    });
    closers.push(() => app.close());
    const url = await app.listen({ host: config.host, port: config.port });
    return { app, url, adminTokenFile: admin.file, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
