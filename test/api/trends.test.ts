import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeJpeg, fakePng, SAMPLE_PROMPT, startTestApi, type TestApi } from '../support/api.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('trends API', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ MAX_UPLOAD_SIZE: '64KiB' });
    const put = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/prompts/ghibli-portrait',
      headers: { ...api.admin, 'content-type': 'application/yaml' },
      payload: SAMPLE_PROMPT('ghibli-portrait'),
    });
    expect(put.statusCode).toBe(201);
  });
  afterAll(async () => api?.close());

  it('creates a trend, then reads it back', async () => {
    const created = await api.app.inject({
      method: 'POST',
      url: '/api/v1/trends',
      headers: api.admin,
      payload: {
        slug: 'ghibli',
        title: 'Ghibli portrait',
        emoji: '🎨',
        prompt: 'ghibli-portrait',
        params: { strength: 0.8 },
      },
    });
    expect(created.statusCode).toBe(201);
    const read = await api.app.inject({ method: 'GET', url: '/api/v1/trends/ghibli', headers: api.client });
    expect(read.statusCode).toBe(200);
    expect(read.json()).toMatchObject({
      slug: 'ghibli',
      prompt: 'ghibli-portrait',
      params: { strength: 0.8 },
      example: null,
    });
    const list = await api.app.inject({ method: 'GET', url: '/api/v1/trends', headers: api.client });
    expect(list.json().trends.map((t: { slug: string }) => t.slug)).toEqual(['ghibli']);
  });

  it('refuses a duplicate slug, an unknown prompt and malformed bodies', async () => {
    const dup = await api.app.inject({
      method: 'POST',
      url: '/api/v1/trends',
      headers: api.admin,
      payload: { slug: 'ghibli', title: 'x', prompt: 'ghibli-portrait' },
    });
    expect(dup.statusCode).toBe(409);
    const unknown = await api.app.inject({
      method: 'POST',
      url: '/api/v1/trends',
      headers: api.admin,
      payload: { slug: 'other', title: 'x', prompt: 'nope' },
    });
    expect(unknown.statusCode).toBe(422);
    expect(unknown.json().error.code).toBe('unknown_prompt');
    const bad = await api.app.inject({
      method: 'POST',
      url: '/api/v1/trends',
      headers: api.admin,
      payload: { slug: 'Bad Slug!', title: 'x', prompt: 'ghibli-portrait' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/^slug: /);
  });

  it('patches a trend', async () => {
    const patched = await api.app.inject({
      method: 'PATCH',
      url: '/api/v1/trends/ghibli',
      headers: api.admin,
      payload: { title: 'Ghibli, again', status: 'hidden' },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ title: 'Ghibli, again', status: 'hidden' });
    const list = await api.app.inject({ method: 'GET', url: '/api/v1/trends', headers: api.client });
    expect(list.json().trends).toEqual([]);
    await api.app.inject({
      method: 'PATCH',
      url: '/api/v1/trends/ghibli',
      headers: api.admin,
      payload: { status: 'active' },
    });
  });

  it('I2: stores the example as a content-addressed object before the trend refers to it', async () => {
    const image = fakePng(4000);
    const put = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/trends/ghibli/example',
      headers: { ...api.admin, 'content-type': 'image/png' },
      payload: image,
    });
    expect(put.statusCode).toBe(200);
    const { key, sha256, size } = put.json();
    expect(sha256).toBe(sha(image));
    expect(size).toBe(image.length);
    expect(key).toBe(`example/${sha256.slice(0, 2)}/${sha256}.png`);
    const trend = (
      await api.app.inject({ method: 'GET', url: '/api/v1/trends/ghibli', headers: api.client })
    ).json();
    expect(trend.example).toMatchObject({ key, sha256, url: `/api/v1/objects/${key}` });
    const bytes = await api.app.inject({ method: 'GET', url: trend.example.url, headers: api.client });
    expect(bytes.statusCode).toBe(200);
    expect(bytes.headers.etag).toBe(`"${sha256}"`);
    expect(bytes.headers['content-type']).toBe('image/png');
    expect(sha(bytes.rawPayload)).toBe(sha256);
    const cached = await api.app.inject({
      method: 'GET',
      url: trend.example.url,
      headers: { ...api.client, 'if-none-match': `"${sha256}"` },
    });
    expect(cached.statusCode).toBe(304);
  });

  it('accepts a multipart upload in the field "file", typed by its bytes', async () => {
    const image = fakeJpeg(3000);
    const boundary = 'trendgen-boundary';
    const payload = Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n`,
      ),
      image,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const put = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/trends/ghibli/example',
      headers: { ...api.admin, 'content-type': `multipart/form-data; boundary=${boundary}` },
      payload,
    });
    expect(put.statusCode).toBe(200);
    expect(put.json().key).toMatch(/\.jpg$/);
    expect(put.json().sha256).toBe(sha(image));
  });

  it('answers 413 above the size limit and 415 when the bytes are not an image, storing nothing', async () => {
    const before = await api.db.sql`select count(*)::int as n from objects`;
    const big = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/trends/ghibli/example',
      headers: { ...api.admin, 'content-type': 'image/png' },
      payload: fakePng(65 * 1024),
    });
    expect(big.statusCode).toBe(413);
    const boundary = 'b';
    const bigMultipart = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/trends/ghibli/example',
      headers: { ...api.admin, 'content-type': `multipart/form-data; boundary=${boundary}` },
      payload: Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n`),
        fakePng(80 * 1024),
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]),
    });
    expect(bigMultipart.statusCode).toBe(413);
    const lie = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/trends/ghibli/example',
      headers: { ...api.admin, 'content-type': 'image/png' },
      payload: Buffer.from('<?php echo "not an image"; ?>'),
    });
    expect(lie.statusCode).toBe(415);
    const empty = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/trends/ghibli/example',
      headers: { ...api.admin, 'content-type': 'image/png' },
      payload: Buffer.alloc(0),
    });
    expect([400, 415]).toContain(empty.statusCode);
    const after = await api.db.sql`select count(*)::int as n from objects`;
    expect(after[0]!.n).toBe(before[0]!.n);
  });

  it('needs tokens: none → 401, client token on an admin route → 403', async () => {
    expect((await api.app.inject({ method: 'GET', url: '/api/v1/trends' })).statusCode).toBe(401);
    const forbidden = await api.app.inject({
      method: 'POST',
      url: '/api/v1/trends',
      headers: api.client,
      payload: { slug: 'x', title: 'x', prompt: 'ghibli-portrait' },
    });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().error.code).toBe('forbidden');
    const wrong = await api.app.inject({
      method: 'GET',
      url: '/api/v1/trends',
      headers: { authorization: 'Bearer nope' },
    });
    expect(wrong.statusCode).toBe(401);
  });

  it('refuses object keys that try to leave the store', async () => {
    for (const url of [
      '/api/v1/objects/../secrets/admin-token',
      '/api/v1/objects/example/%2e%2e/x',
      '/api/v1/objects/.tmp/x',
    ]) {
      const response = await api.app.inject({ method: 'GET', url, headers: api.client });
      expect([400, 404]).toContain(response.statusCode);
    }
  });
});
