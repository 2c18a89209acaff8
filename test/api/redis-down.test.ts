import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/lib/process.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { createTrendWithPrompt, postGeneration, samplePhoto } from '../support/generation.ts';

/**
 * Redis is not running: the generation's row is committed before its job is queued (I4), so the request is
 * answered once the row is durable, without waiting for Redis to come back, and the reconciler queues it later.
 */
describe('a generation requested while Redis is down', () => {
  let api: TestApi;
  beforeAll(async () => {
    // Nothing listens there: the queue's connection retries for as long as the test lasts.
    api = await startTestApi({}, { redisUrl: `redis://127.0.0.1:${await freePort()}` });
    await createTrendWithPrompt(api);
  });
  afterAll(async () => await api?.close());

  it('is answered 202 within seconds and its row waits queued', async () => {
    const started = Date.now();
    const accepted = await postGeneration(
      api,
      { trend: 'ghibli', user: 'redis-down', variants: '1' },
      await samplePhoto(3),
    );
    expect(accepted.statusCode).toBe(202);
    expect(Date.now() - started).toBeLessThan(10_000);
    const [row] = await api.db.sql`select status from generations where id = ${accepted.body.id}`;
    expect(row?.status).toBe('queued');
  }, 30_000);
});
