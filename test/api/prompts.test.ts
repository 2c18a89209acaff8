import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_PROMPT, startTestApi, type TestApi } from '../support/api.ts';

describe('prompts API', () => {
  let api: TestApi;
  const yaml = { 'content-type': 'application/yaml' };
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => api?.close());

  const put = (name: string, body: string, headers: Record<string, string> = {}) =>
    api.app.inject({
      method: 'PUT',
      url: `/api/v1/prompts/${name}`,
      headers: { ...api.admin, ...yaml, ...headers },
      payload: body,
    });

  it('creates versions and writes the file', async () => {
    const first = await put('ghibli', SAMPLE_PROMPT('ghibli'));
    expect(first.statusCode).toBe(201);
    expect(first.json()).toMatchObject({ name: 'ghibli', version: 1 });
    expect(first.json().sha256).toMatch(/^[0-9a-f]{64}$/);
    const second = await put('ghibli', SAMPLE_PROMPT('ghibli', 'Paint {subject} in watercolour'), {
      'if-match': '1',
    });
    expect(second.statusCode).toBe(200);
    expect(second.json().version).toBe(2);
    expect(readFileSync(path.join(api.config.promptsDir, 'ghibli.yaml'), 'utf8')).toContain('watercolour');
    const same = await put('ghibli', SAMPLE_PROMPT('ghibli', 'Paint {subject} in watercolour'));
    expect(same.json().version).toBe(2);
  });

  it('answers 409 to a stale If-Match and changes nothing', async () => {
    const stale = await put('ghibli', SAMPLE_PROMPT('ghibli', 'Lost update {subject}'), { 'if-match': '1' });
    expect(stale.statusCode).toBe(409);
    expect(stale.json().error.code).toBe('version_conflict');
    expect(readFileSync(path.join(api.config.promptsDir, 'ghibli.yaml'), 'utf8')).not.toContain(
      'Lost update',
    );
  });

  it('I5: answers 422 with line and column, and the version in use stays', async () => {
    const invalid = await put('ghibli', 'name: ghibli\ntitle: [unclosed\nmodel: x\n');
    expect(invalid.statusCode).toBe(422);
    const error = invalid.json().error;
    expect(error.code).toBe('invalid_prompt');
    expect(error.line).toBeGreaterThan(0);
    expect(error.column).toBeGreaterThan(0);
    const wrongType = await put('ghibli', SAMPLE_PROMPT('ghibli').replace('size: medium', 'size: gigantic'));
    expect(wrongType.statusCode).toBe(422);
    expect(wrongType.json().error).toMatchObject({ line: 9, column: 9 });
    const current = await api.app.inject({
      method: 'GET',
      url: '/api/v1/prompts/ghibli',
      headers: api.client,
    });
    expect(current.json().version).toBe(2);
  });

  it('I5: a hand edit in the folder is recorded, and an invalid one keeps the last valid version', async () => {
    const file = path.join(api.config.promptsDir, 'ghibli.yaml');
    writeFileSync(file, SAMPLE_PROMPT('ghibli', 'Hand-edited {subject}'));
    const { syncPromptsDir } = await import('../../src/prompts/index.ts');
    await syncPromptsDir(api.db.sql, api.config.promptsDir, { maxBytes: api.config.limits.maxPromptBytes });
    writeFileSync(file, 'name: ghibli\n  broken: : yaml\n');
    await syncPromptsDir(api.db.sql, api.config.promptsDir, { maxBytes: api.config.limits.maxPromptBytes });
    const current = (
      await api.app.inject({ method: 'GET', url: '/api/v1/prompts/ghibli', headers: api.client })
    ).json();
    expect(current.version).toBe(3);
    expect(current.content).toContain('Hand-edited');
    const versions = (
      await api.app.inject({ method: 'GET', url: '/api/v1/prompts/ghibli/versions', headers: api.client })
    ).json();
    expect(versions.versions.map((v: { version: number; origin: string }) => [v.version, v.origin])).toEqual([
      [1, 'api'],
      [2, 'api'],
      [3, 'file'],
    ]);
    const ready = await api.app.inject({ method: 'GET', url: '/readyz' });
    expect(JSON.stringify(ready.json())).toContain('1 prompt file(s) invalid');
  });

  it('restores an old version as a new one', async () => {
    const restored = await api.app.inject({
      method: 'POST',
      url: '/api/v1/prompts/ghibli/restore',
      headers: api.admin,
      payload: { version: 1 },
    });
    expect(restored.statusCode).toBe(200);
    expect(restored.json().version).toBe(4);
    const v4 = (
      await api.app.inject({ method: 'GET', url: '/api/v1/prompts/ghibli/versions/4', headers: api.client })
    ).json();
    expect(v4.origin).toBe('restore');
    expect(v4.content).toBe(SAMPLE_PROMPT('ghibli'));
    const text = await api.app.inject({
      method: 'GET',
      url: '/api/v1/prompts/ghibli?format=yaml',
      headers: api.client,
    });
    expect(text.body).toBe(SAMPLE_PROMPT('ghibli'));
  });

  it('404s an unknown prompt or version, refuses a client token on writes', async () => {
    expect(
      (await api.app.inject({ method: 'GET', url: '/api/v1/prompts/nope', headers: api.client })).statusCode,
    ).toBe(404);
    expect(
      (
        await api.app.inject({
          method: 'GET',
          url: '/api/v1/prompts/ghibli/versions/99',
          headers: api.client,
        })
      ).statusCode,
    ).toBe(404);
    const asClient = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/prompts/ghibli',
      headers: { ...api.client, ...yaml },
      payload: SAMPLE_PROMPT('ghibli'),
    });
    expect(asClient.statusCode).toBe(403);
  });

  it('refuses a name mismatch between URL and file, and a non-YAML body', async () => {
    const mismatch = await put('other', SAMPLE_PROMPT('ghibli'));
    expect(mismatch.statusCode).toBe(422);
    const json = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/prompts/other',
      headers: api.admin,
      payload: { name: 'other' },
    });
    expect(json.statusCode).toBe(415);
  });
});
