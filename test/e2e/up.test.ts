import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isAlive, waitForExit } from '../../src/lib/process.ts';
import { fakePng, SAMPLE_PROMPT } from '../support/api.ts';
import { descendants, startUp, type UpProcess } from '../support/processes.ts';
import { tempDir } from '../support/temp.ts';

describe('trendgen up on a fresh machine', () => {
  const temp = tempDir('up');
  let up: UpProcess | undefined;
  afterAll(async () => {
    await up?.stop();
    temp.remove();
  });

  it('starts embedded PostgreSQL and Redis, serves the API, and stops everything in order', async () => {
    const env = { DATA_DIR: path.join(temp.dir, 'data'), PROMPTS_DIR: path.join(temp.dir, 'prompts') };
    up = await startUp(env);
    expect(up.output()).toContain('Admin token: in');
    const token = readFileSync(path.join(env.DATA_DIR, 'secrets', 'admin-token'), 'utf8').trim();
    const auth = { authorization: `Bearer ${token}` };

    const prompt = await fetch(`${up.baseUrl}/api/v1/prompts/ghibli-portrait`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/yaml' },
      body: SAMPLE_PROMPT('ghibli-portrait'),
    });
    expect(prompt.status).toBe(201);
    const trend = await fetch(`${up.baseUrl}/api/v1/trends`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ slug: 'ghibli', title: 'Ghibli portrait', prompt: 'ghibli-portrait' }),
    });
    expect(trend.status).toBe(201);
    const image = fakePng(50_000);
    const example = await fetch(`${up.baseUrl}/api/v1/trends/ghibli/example`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'image/png' },
      body: image,
    });
    expect(example.status).toBe(200);

    const read = (await (await fetch(`${up.baseUrl}/api/v1/trends/ghibli`, { headers: auth })).json()) as {
      example: { sha256: string; url: string };
    };
    expect(read.example.sha256).toBe(createHash('sha256').update(image).digest('hex'));
    const bytes = Buffer.from(
      await (await fetch(`${up.baseUrl}${read.example.url}`, { headers: auth })).arrayBuffer(),
    );
    expect(bytes.equals(image)).toBe(true);
    const yaml = await (
      await fetch(`${up.baseUrl}/api/v1/prompts/ghibli-portrait?format=yaml`, { headers: auth })
    ).text();
    expect(yaml).toBe(SAMPLE_PROMPT('ghibli-portrait'));
    expect(readFileSync(path.join(env.PROMPTS_DIR, 'ghibli-portrait.yaml'), 'utf8')).toBe(
      SAMPLE_PROMPT('ghibli-portrait'),
    );

    const metrics = await (await fetch(`${up.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/trendgen_objects\{kind="example"\} 1/);
    const docs = await fetch(`${up.baseUrl}/api/docs/json`);
    expect(((await docs.json()) as { paths: object }).paths).toHaveProperty('/api/v1/trends');

    const tree = [up.child.pid!, ...descendants(up.child.pid!)];
    expect(await up.stop('SIGINT')).toBe(0);
    for (const pid of tree) expect(await waitForExit(pid, 10_000)).toBe(true);
    expect(tree.some((pid) => isAlive(pid))).toBe(false);
  });
});
