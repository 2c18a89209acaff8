import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pino, { type Logger } from 'pino';
import { buildServer } from '../../src/api/server.ts';
import { createBlobStore } from '../../src/blobstore/index.ts';
import { type Config, loadConfig } from '../../src/config/config.ts';
import { createQueue, type GenerationJobData, queueConnection } from '../../src/generation/queue.ts';
import type { Liveness } from '../../src/lib/liveness.ts';
import { ObjectStore } from '../../src/objects/store.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { objectStoreSyncOptions } from '../../src/vault/stream/objects-sync.ts';
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
  options: {
    logger?: Logger;
    redisUrl?: string;
    queuePrefix?: string;
    liveness?: Liveness;
    /** Hooks a test adds to the server before it starts (Fastify takes none after). */
    beforeReady?: (app: FastifyInstance) => void;
  } = {},
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
  const blobs = createBlobStore(config.storageUrl, config.s3);
  const objects = new ObjectStore(
    db.sql,
    blobs,
    path.join(config.dataDir, 'tmp'),
    objectStoreSyncOptions(config, db.sql, blobs),
  );
  const app = await buildServer({
    config,
    sql: db.sql,
    redis,
    queue,
    urls: { database: db.url, redis: options.redisUrl ?? testRedisUrl() },
    objects,
    tokens: { admin: adminToken, client: clientToken },
    metrics: createMetrics(db.sql, config),
    logger: options.logger ?? pino({ level: 'silent' }),
    ...(options.liveness ? { liveness: options.liveness } : {}),
  });
  options.beforeReady?.(app);
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

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/**
 * A real, decodable PNG of exactly `size` bytes, different for each seed: a 2×2 picture drawn from the
 * seed, padded with a private ancillary chunk (`tgPd`, which decoders skip) to the size asked for. Uploads
 * are decoded whole (objects/image-check.ts), so the tests' images must be images. Below ~95 bytes no PNG
 * fits: the signature and seed bytes are returned, for tests that only need a PNG's first bytes.
 */
export function fakePng(size = 1024, seed = randomBytes(8)): Buffer {
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(2, 0);
  ihdr.writeUInt32BE(2, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  const rows: Buffer[] = [];
  for (let y = 0; y < 2; y++) {
    const row = Buffer.alloc(1 + 2 * 3); // filter byte 0, then pixels
    for (let i = 1; i < row.length; i++) row[i] = seed[(y * 6 + i) % seed.length]! ^ (y * 31 + i);
    rows.push(row);
  }
  const head = Buffer.concat([signature, pngChunk('IHDR', ihdr)]);
  const tail = Buffer.concat([
    pngChunk('IDAT', deflateSync(Buffer.concat(rows))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
  const padding = size - head.length - tail.length - 12;
  if (padding < 0) {
    const body = Buffer.alloc(size);
    signature.copy(body, 0);
    for (let i = 8; i < size; i++) body[i] = seed[i % seed.length]! ^ (i & 0xff);
    return body;
  }
  const fill = Buffer.alloc(padding);
  for (let i = 0; i < padding; i++) fill[i] = seed[i % seed.length]! ^ (i & 0xff);
  return Buffer.concat([head, pngChunk('tgPd', fill), tail]);
}

/** An 8×8 baseline JPEG (sharp's output, quality 50). */
const TINY_JPEG = Buffer.from(
  '/9j/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAIAAgDASIAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAAAAL/xAAUEAEAAAAAAAAAAAAAAAAAAAAA/8QAFAEBAAAAAAAAAAAAAAAAAAAABf/EABQRAQAAAAAAAAAAAAAAAAAAAAD/2gAMAwEAAhEDEQA/AJAFmX//2Q==',
  'base64',
);

/**
 * A real, decodable JPEG of exactly `size` bytes (at least 272), different on every call: the 8×8 JPEG
 * above with random comment segments (COM) after its SOI, and 0xFF fill bytes where a segment cannot fit.
 */
export function fakeJpeg(size = 1024): Buffer {
  let left = size - TINY_JPEG.length;
  if (left < 0) throw new Error(`fakeJpeg: ${size} bytes is smaller than the smallest JPEG here`);
  const parts: Buffer[] = [TINY_JPEG.subarray(0, 2)];
  while (left >= 4) {
    let take = Math.min(left, 65_537);
    if (left - take > 0 && left - take < 4) take -= 4;
    const segment = randomBytes(take);
    segment[0] = 0xff;
    segment[1] = 0xfe;
    segment.writeUInt16BE(take - 2, 2);
    parts.push(segment);
    left -= take;
  }
  parts.push(Buffer.alloc(left, 0xff), TINY_JPEG.subarray(2));
  return Buffer.concat(parts);
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
