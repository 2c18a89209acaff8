import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrepairedObjectDamage } from '../../src/objects/integrity.ts';
import { currentConditions } from '../../src/ops/alerts.ts';
import { fakePng, startTestApi, type TestApi } from '../support/api.ts';
import { flipByte } from '../support/files.ts';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('I7: a damaged object is never served as good', () => {
  let api: TestApi;
  let base: string;
  const image = fakePng(300_000);
  let key: string;
  let blobFile: string;
  beforeAll(async () => {
    api = await startTestApi();
    base = await api.app.listen({ host: '127.0.0.1', port: 0 });
    const record = await api.objects.put(Readable.from([image]), { kind: 'example', maxBytes: 10_000_000 });
    key = record.key;
    blobFile = path.join(fileURLToPath(api.config.storageUrl), ...key.split('/'));
  });
  afterAll(async () => api?.close());

  const get = () => fetch(`${base}/api/v1/objects/${key}`, { headers: api.client });

  it('a GET of a copy with a flipped byte fails before its last byte, and the damage is counted and alerted', async () => {
    expect(Buffer.from(await (await get()).arrayBuffer()).equals(image)).toBe(true);
    flipByte(blobFile);
    const response = await get();
    // The headers went out before the damage could be known; the body never completes.
    expect(response.headers.get('etag')).toBe(`"${sha256(image)}"`);
    const body = await response.arrayBuffer().then(
      (bytes) => Buffer.from(bytes),
      () => undefined,
    );
    expect(body, 'wrong bytes were served complete under the right ETag').toBeUndefined();
    expect((await unrepairedObjectDamage(api.db.sql)).map((d) => [d.key, d.foundBy])).toEqual([
      [key, 'read'],
    ]);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('trendgen_object_damage_detections_total{found_by="read"} 1');
    expect(metrics).toContain('trendgen_objects_damaged 1');
    const ready = (await (await fetch(`${base}/readyz`)).json()) as {
      checks: Array<{ name: string; ok: boolean; detail: string }>;
    };
    expect(ready.checks.find((c) => c.name === 'object-integrity')).toMatchObject({ ok: false });
    const conditions = await currentConditions(api.db.sql, api.config);
    expect(conditions.map((c) => c.key)).toContain(`object-damaged:${key}`);
  });

  it('uploading the true bytes again repairs the stored copy', async () => {
    const again = await api.objects.put(Readable.from([image]), { kind: 'example', maxBytes: 10_000_000 });
    expect(again.key).toBe(key);
    expect(sha256(readFileSync(blobFile))).toBe(sha256(image));
    expect(Buffer.from(await (await get()).arrayBuffer()).equals(image)).toBe(true);
    expect(await unrepairedObjectDamage(api.db.sql)).toEqual([]);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('trendgen_objects_damaged 0');
  });
});
