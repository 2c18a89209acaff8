import path from 'node:path';
import type { Worker } from 'bullmq';
import pino from 'pino';
import sharp from 'sharp';
import type { ImageProvider } from '../../src/generation/providers/provider.ts';
import { createProvider } from '../../src/generation/providers/provider.ts';
import { queueConnection } from '../../src/generation/queue.ts';
import { createGenerationWorker, type WorkerSettings } from '../../src/generation/worker.ts';
import { waitFor } from '../../src/lib/process.ts';
import { ObjectStore } from '../../src/objects/store.ts';
import { SAMPLE_PROMPT, type TestApi } from './api.ts';

/** A real, decodable photo (sharp draws it), small so that renders stay fast. */
export async function samplePhoto(seed = 1, size = 96): Promise<Buffer> {
  const r = (seed * 53) % 256;
  const g = (seed * 97) % 256;
  const b = (seed * 151) % 256;
  const circle = Buffer.from(
    `<svg width="${size}" height="${size}"><circle cx="${size / 2}" cy="${size / 2}" r="${size / 3}" fill="rgb(${b},${r},${g})"/></svg>`,
  );
  return await sharp({ create: { width: size, height: size, channels: 3, background: { r, g, b } } })
    .composite([{ input: circle }])
    .jpeg()
    .toBuffer();
}

export async function createTrendWithPrompt(
  api: TestApi,
  slug = 'ghibli',
  prompt = 'ghibli-portrait',
): Promise<void> {
  const yaml = SAMPLE_PROMPT(prompt)
    .replace('model: gpt-image-1', 'model: local')
    .replace('size: medium', 'size: small');
  const put = await api.app.inject({
    method: 'PUT',
    url: `/api/v1/prompts/${prompt}`,
    headers: { ...api.admin, 'content-type': 'application/yaml' },
    payload: yaml,
  });
  if (put.statusCode >= 300) throw new Error(`prompt: ${put.body}`);
  const trend = await api.app.inject({
    method: 'POST',
    url: '/api/v1/trends',
    headers: api.admin,
    payload: { slug, title: 'Ghibli portrait', prompt },
  });
  if (trend.statusCode >= 300) throw new Error(`trend: ${trend.body}`);
}

export function generationForm(
  fields: Record<string, string>,
  photo: Buffer,
): { payload: Buffer; contentType: string } {
  const boundary = `----trendgen${Math.random().toString(16).slice(2)}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`),
    );
  }
  parts.push(
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="photo"; filename="me.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`,
    ),
    photo,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  );
  return { payload: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

export async function postGeneration(
  api: TestApi,
  fields: Record<string, string>,
  photo: Buffer,
  headers: Record<string, string> = {},
): Promise<{
  statusCode: number;
  body: { id: string; status: string; error?: { code: string; message: string } };
}> {
  const form = generationForm(fields, photo);
  const response = await api.app.inject({
    method: 'POST',
    url: '/api/v1/generations',
    headers: { ...api.client, ...headers, 'content-type': form.contentType },
    payload: form.payload,
  });
  return { statusCode: response.statusCode, body: response.json() };
}

export const FAST_SETTINGS: WorkerSettings = {
  concurrency: 2,
  leaseSeconds: 5,
  timeoutSeconds: 60,
  maxAttempts: 5,
  retryBaseMs: 100,
  retryCapMs: 1000,
};

export interface TestWorker {
  worker: Worker;
  close(): Promise<void>;
}

/** The real worker, in this process, on the test API's queue and object store. */
export function startTestWorker(
  api: TestApi,
  options: { provider?: ImageProvider; settings?: Partial<WorkerSettings>; redisUrl: string },
): TestWorker {
  const connection = queueConnection(options.redisUrl);
  connection.on('error', () => {});
  const objects = new ObjectStore(
    api.db.sql,
    api.objects.blobs,
    path.join(api.config.dataDir, 'tmp', 'worker'),
  );
  const worker = createGenerationWorker({
    sql: api.db.sql,
    connection,
    objects,
    provider: options.provider ?? createProvider(api.config),
    logger: pino({ level: 'silent' }),
    settings: { ...FAST_SETTINGS, ...options.settings },
    queuePrefix: api.queuePrefix,
  });
  return {
    worker,
    close: async () => {
      await worker.close();
      connection.disconnect();
    },
  };
}

export async function waitForStatus(api: TestApi, id: string, statuses: string[], timeoutMs = 60_000) {
  return await waitFor(
    `generation ${id} to reach ${statuses.join('/')}`,
    async () => {
      const response = await api.app.inject({
        method: 'GET',
        url: `/api/v1/generations/${id}`,
        headers: api.client,
      });
      const body = response.json();
      return statuses.includes(body.status) ? body : undefined;
    },
    timeoutMs,
    100,
  );
}
