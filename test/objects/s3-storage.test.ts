import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakePng, SAMPLE_PROMPT, startTestApi, type TestApi } from '../support/api.ts';
import { type S3Server, startS3Server } from '../support/s3-server.ts';

describe('objects on an S3 bucket (STORAGE_URL=s3://…)', () => {
  let s3: S3Server;
  let api: TestApi;
  beforeAll(async () => {
    s3 = await startS3Server({ buckets: ['objects'] });
    api = await startTestApi({
      STORAGE_URL: 's3://objects/trendgen',
      S3_ENDPOINT: s3.endpoint,
      AWS_ACCESS_KEY_ID: s3.settings.accessKeyId!,
      AWS_SECRET_ACCESS_KEY: s3.settings.secretAccessKey!,
    });
  });
  afterAll(async () => {
    await api?.close();
    await s3?.stop();
  });

  it('I2: an example lands in the bucket before the trend refers to it, and reads back by key', async () => {
    await api.app.inject({
      method: 'PUT',
      url: '/api/v1/prompts/p',
      headers: { ...api.admin, 'content-type': 'application/yaml' },
      payload: SAMPLE_PROMPT('p'),
    });
    await api.app.inject({
      method: 'POST',
      url: '/api/v1/trends',
      headers: api.admin,
      payload: { slug: 's', title: 'S', prompt: 'p' },
    });
    const image = fakePng(300_000);
    const put = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/trends/s/example',
      headers: { ...api.admin, 'content-type': 'image/png' },
      payload: image,
    });
    expect(put.statusCode).toBe(200);
    const { key, sha256 } = put.json();
    expect(await api.objects.blobs.head(key)).toMatchObject({ size: image.length });
    const read = await api.app.inject({ method: 'GET', url: `/api/v1/objects/${key}`, headers: api.client });
    expect(createHash('sha256').update(read.rawPayload).digest('hex')).toBe(sha256);
  });
});
