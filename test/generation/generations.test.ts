import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerationRequest, ImageProvider } from '../../src/generation/providers/provider.ts';
import {
  createProvider,
  PermanentProviderError,
  TransientProviderError,
} from '../../src/generation/providers/provider.ts';
import { SAMPLE_PROMPT, startTestApi, type TestApi } from '../support/api.ts';
import { testRedisUrl } from '../support/database.ts';
import {
  createTrendWithPrompt,
  postGeneration,
  samplePhoto,
  startTestWorker,
  type TestWorker,
  waitForStatus,
} from '../support/generation.ts';

/** Fault injection around the real local renderer: the first `failures` calls fail the given way. */
function flakyProvider(
  real: ImageProvider,
  failures: number,
  make: () => Error,
): ImageProvider & { calls: number } {
  const provider = {
    name: 'flaky',
    calls: 0,
    async generate(request: GenerationRequest) {
      provider.calls++;
      if (provider.calls <= failures) throw make();
      return await real.generate(request);
    },
  };
  return provider;
}

describe('generations', () => {
  let api: TestApi;
  let worker: TestWorker | undefined;
  beforeAll(async () => {
    api = await startTestApi();
    await createTrendWithPrompt(api);
  });
  afterAll(async () => {
    await worker?.close();
    await api?.close();
  });

  it('accepts a photo, renders every variant with a preview, and pins the prompt version', async () => {
    worker = startTestWorker(api, { redisUrl: testRedisUrl() });
    const accepted = await postGeneration(
      api,
      { trend: 'ghibli', user: 'alice', variants: '2' },
      await samplePhoto(1),
    );
    expect(accepted.statusCode).toBe(202);
    expect(accepted.body.status).toBe('queued');
    const done = await waitForStatus(api, accepted.body.id, ['succeeded', 'failed']);
    expect(done).toMatchObject({ status: 'succeeded', trend: 'ghibli', promptVersion: 1, user: 'alice' });
    expect(done.outputs).toHaveLength(2);
    for (const output of done.outputs) {
      const image = await api.app.inject({ method: 'GET', url: output.url, headers: api.client });
      expect(image.statusCode).toBe(200);
      expect(image.headers['content-type']).toMatch(/^image\//);
      const preview = await api.app.inject({ method: 'GET', url: output.previewUrl, headers: api.client });
      expect(preview.statusCode).toBe(200);
    }
    // Editing the prompt afterwards does not change what was used.
    const edit = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/prompts/ghibli-portrait',
      headers: { ...api.admin, 'content-type': 'application/yaml' },
      payload: SAMPLE_PROMPT('ghibli-portrait', 'Now {subject} in oils').replace(
        'model: gpt-image-1',
        'model: local',
      ),
    });
    expect(edit.json().version).toBe(2);
    const again = await api.app.inject({
      method: 'GET',
      url: `/api/v1/generations/${accepted.body.id}`,
      headers: api.client,
    });
    expect(again.json().promptVersion).toBe(1);
    const list = await api.app.inject({
      method: 'GET',
      url: '/api/v1/generations?user=alice',
      headers: api.client,
    });
    expect(list.json().generations.map((g: { id: string }) => g.id)).toContain(accepted.body.id);
  });

  it('the same Idempotency-Key, sent twice and then ten times at once, gives one generation', async () => {
    const photo = await samplePhoto(2);
    const headers = { 'idempotency-key': 'order-77' };
    const first = await postGeneration(api, { trend: 'ghibli', user: 'bob', variants: '1' }, photo, headers);
    const second = await postGeneration(api, { trend: 'ghibli', user: 'bob', variants: '1' }, photo, headers);
    expect(second.body.id).toBe(first.body.id);
    const burst = await Promise.all(
      Array.from({ length: 10 }, () =>
        postGeneration(api, { trend: 'ghibli', user: 'bob', variants: '1' }, photo, {
          'idempotency-key': 'burst-1',
        }),
      ),
    );
    expect(new Set(burst.map((r) => r.body.id)).size).toBe(1);
    const rows = await api.db.sql`select count(*)::int as n from generations where user_id = 'bob'`;
    expect(rows[0]!.n).toBe(2);
  });

  it('refuses a bad form: unknown trend 422, too many variants 400, not an image 415', async () => {
    const photo = await samplePhoto(3);
    expect((await postGeneration(api, { trend: 'nope', user: 'x' }, photo)).statusCode).toBe(422);
    expect((await postGeneration(api, { trend: 'ghibli', user: 'x', variants: '9' }, photo)).statusCode).toBe(
      400,
    );
    expect(
      (await postGeneration(api, { trend: 'ghibli', user: 'x' }, Buffer.from('plain text'))).statusCode,
    ).toBe(415);
  });

  it('retries transient provider errors with backoff, fails permanent ones at once with the reason', async () => {
    await worker?.close();
    const real = createProvider(api.config);
    const flaky = flakyProvider(real, 2, () => new TransientProviderError('upstream answered 503'));
    worker = startTestWorker(api, { redisUrl: testRedisUrl(), provider: flaky });
    const retried = await postGeneration(
      api,
      { trend: 'ghibli', user: 'carol', variants: '1' },
      await samplePhoto(4),
    );
    const done = await waitForStatus(api, retried.body.id, ['succeeded', 'failed']);
    expect(done.status).toBe('succeeded');
    expect(done.attempts).toBe(3);
    await worker.close();
    const refusing = flakyProvider(
      real,
      100,
      () => new PermanentProviderError('rejected by the safety system'),
    );
    worker = startTestWorker(api, { redisUrl: testRedisUrl(), provider: refusing });
    const refused = await postGeneration(
      api,
      { trend: 'ghibli', user: 'carol', variants: '1' },
      await samplePhoto(5),
    );
    const failed = await waitForStatus(api, refused.body.id, ['succeeded', 'failed']);
    expect(failed).toMatchObject({ status: 'failed', attempts: 1, error: 'rejected by the safety system' });
    expect(refusing.calls).toBe(1);
  });

  it('I3: deleting a user hides their photos and results at once and records the deletion', async () => {
    await worker?.close();
    worker = startTestWorker(api, { redisUrl: testRedisUrl() });
    const accepted = await postGeneration(
      api,
      { trend: 'ghibli', user: 'dave', variants: '1' },
      await samplePhoto(6),
    );
    const done = await waitForStatus(api, accepted.body.id, ['succeeded']);
    const [row] = await api.db.sql`select photo_key from generations where id = ${accepted.body.id}`;
    const deleted = await api.app.inject({
      method: 'DELETE',
      url: '/api/v1/users/dave/data',
      headers: api.admin,
    });
    expect(deleted.statusCode).toBe(200);
    expect(deleted.json()).toMatchObject({ userId: 'dave', generations: 1, objects: 3 });
    for (const url of [
      done.outputs[0].url,
      done.outputs[0].previewUrl,
      `/api/v1/objects/${row!.photo_key}`,
    ]) {
      expect((await api.app.inject({ method: 'GET', url, headers: api.client })).statusCode).toBe(404);
    }
    expect(
      (
        await api.app.inject({
          method: 'GET',
          url: `/api/v1/generations/${accepted.body.id}`,
          headers: api.client,
        })
      ).statusCode,
    ).toBe(404);
    const records = await api.db.sql`select user_id from user_deletions where user_id = 'dave'`;
    expect(records).toHaveLength(1);
    // The bytes stay until the retention window has passed (I3).
    expect(await api.objects.blobs.head(row!.photo_key as string)).toBeDefined();
    const asClient = await api.app.inject({
      method: 'DELETE',
      url: '/api/v1/users/dave/data',
      headers: api.client,
    });
    expect(asClient.statusCode).toBe(403);
  });

  it('reports jobs by state, time in queue and to finish, provider errors and repairs on /metrics', async () => {
    const text = (await api.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/^trendgen_generations\{state="succeeded"\} [1-9]/m);
    expect(text).toMatch(/^trendgen_generations\{state="failed"\} [1-9]/m);
    expect(text).toMatch(/^trendgen_generation_seconds\{phase="queue",quantile="0.5"\} /m);
    expect(text).toMatch(/^trendgen_generation_seconds\{phase="finish",quantile="0.95"\} /m);
    expect(text).toMatch(/^trendgen_provider_errors_total\{kind="transient"\} 2/m);
    expect(text).toMatch(/^trendgen_provider_errors_total\{kind="permanent"\} 1/m);
    expect(text).toContain('# TYPE trendgen_reconciler_repairs_total counter');
  });
});
