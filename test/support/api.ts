import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pino, { type Logger } from 'pino';
import { buildServer } from '../../src/api/server.ts';
import { createBlobStore } from '../../src/blobstore/index.ts';
import { type Config, loadConfig } from '../../src/config/config.ts';
import { createQueue, type GenerationJobData, queueConnection } from '../../src/generation/queue.ts';
import { ObjectStore } from '../../src/objects/store.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { targetNames } from '../../src/vault/targets.ts';
import { createTestDatabase, type TestDatabase, testRedisUrl } from './database.ts';
import { tempDir } from './temp.ts';

export interface TestApi {
  app: FastifyInstance;
  db: TestDatabase;
  config: Config;
  objects: ObjectStore;
  queue: Queue<GenerationJobData>;
  queuePrefix: string;
  adminToken: string;
  clientToken: string;
  admin: Record<string, string>;
  client: Record<string, string>;
  close(): Promise<void>;
}

/** The real HTTP server on a real database, Redis and file object store, driven in-process with inject(). */
export async function startTestApi(
  env: Record<string, string> = {},
  options: { logger?: Logger; redisUrl?: string; queuePrefix?: string } = {},
): Promise<TestApi> {
  const temp = tempDir('api');
  const db = await createTestDatabase();
  const adminToken = randomBytes(24).toString('hex');
  const clientToken = randomBytes(24).toString('hex');
  const config = loadConfig(
    {
      DATA_DIR: path.join(temp.dir, 'data'),
      PROMPTS_DIR: path.join(temp.dir, 'prompts'),
      BACKUP_DIR: path.join(temp.dir, 'backups'),
      DATABASE_URL: db.url,
      REDIS_URL: testRedisUrl(),
      ADMIN_TOKEN: adminToken,
      API_TOKEN: clientToken,
      LOG_LEVEL: 'silent',
      ...env,
    },
    { dotEnv: false },
  );
  mkdirSync(config.promptsDir, { recursive: true });
  const redis = new Redis(options.redisUrl ?? testRedisUrl(), { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  const queueRedis = queueConnection(options.redisUrl ?? testRedisUrl());
  // Each test API gets its own queue name space through a key prefix, so parallel test files never share jobs.
  const queuePrefix = options.queuePrefix ?? `t${randomBytes(4).toString('hex')}`;
  const queue = createQueue(queueRedis, queuePrefix);
  const objects = new ObjectStore(
    db.sql,
    createBlobStore(config.storageUrl, config.s3),
    path.join(config.dataDir, 'tmp'),
  );
  const app = await buildServer({
    config,
    sql: db.sql,
    redis,
    queue,
    urls: { database: db.url, redis: options.redisUrl ?? testRedisUrl() },
    objects,
    tokens: { admin: adminToken, client: clientToken },
    metrics: createMetrics(db.sql, targetNames(config)),
    logger: options.logger ?? pino({ level: 'silent' }),
  });
  await app.ready();
  return {
    app,
    db,
    config,
    objects,
    queue,
    queuePrefix,
    adminToken,
    clientToken,
    admin: { authorization: `Bearer ${adminToken}` },
    client: { authorization: `Bearer ${clientToken}` },
    close: async () => {
      await app.close();
      await queue.close();
      queueRedis.disconnect();
      redis.disconnect();
      await db.drop();
      temp.remove();
    },
  };
}

/** Bytes that start like a PNG: the service decides types by magic numbers. */
export function fakePng(size = 1024, seed = randomBytes(8)): Buffer {
  const body = Buffer.alloc(size);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(body, 0);
  for (let i = 8; i < size; i++) body[i] = seed[i % seed.length]! ^ (i & 0xff);
  return body;
}

export function fakeJpeg(size = 1024): Buffer {
  const body = randomBytes(size);
  body[0] = 0xff;
  body[1] = 0xd8;
  body[2] = 0xff;
  return body;
}

export const SAMPLE_PROMPT = (
  name: string,
  template = 'Turn {subject} into a hand-painted anime portrait',
) => `name: ${name}
title: Ghibli portrait
model: gpt-image-1
template: "${template}"
negative: "blurry, extra fingers, text"
parameters:
  temperature: 0.7
  seed: 42
  size: medium
tags: [portrait, anime]
`;
