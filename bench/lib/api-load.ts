import { randomBytes } from 'node:crypto';

export interface ApiSamples {
  promptPut: number[];
  exampleUpload: number[];
  errors: number;
}

const promptYaml = (name: string, n: number) => `name: ${name}
title: Bench prompt ${n}
model: gpt-image-1
template: "Turn {subject} into a hand-painted portrait, take ${n}"
negative: "blurry, extra fingers, text"
parameters:
  temperature: 0.7
  seed: ${n}
  size: medium
tags: [portrait, bench]
`;

/** Bytes that start like a PNG (the service decides types by magic numbers), different every time. */
function png(size: number): Buffer {
  const body = randomBytes(size);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(body, 0);
  return body;
}

/** The prompts and trends the load edits: created once, before any measured round. */
export async function prepareApi(baseUrl: string, admin: string, trends: number): Promise<void> {
  for (let i = 0; i < trends; i++) {
    const name = `bench-${i}`;
    const put = await fetch(`${baseUrl}/api/v1/prompts/${name}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/yaml' },
      body: promptYaml(name, 0),
    });
    if (put.status >= 300) throw new Error(`PUT prompt answered ${put.status}: ${await put.text()}`);
    const trend = await fetch(`${baseUrl}/api/v1/trends`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ slug: name, title: `Bench ${i}`, prompt: name }),
    });
    if (trend.status >= 300 && trend.status !== 409) {
      throw new Error(`POST trend answered ${trend.status}: ${await trend.text()}`);
    }
  }
}

/**
 * `requests` writes from `concurrency` clients against a running `trendgen serve`: two prompt PUTs (a new
 * version each) for every example upload (a new object of `uploadBytes` each); milliseconds per answer.
 */
export async function apiLoad(
  baseUrl: string,
  admin: string,
  options: { requests: number; concurrency: number; trends: number; uploadBytes: number; seq: { n: number } },
): Promise<ApiSamples> {
  const samples: ApiSamples = { promptPut: [], exampleUpload: [], errors: 0 };
  let left = options.requests;
  const worker = async () => {
    while (left > 0) {
      left--;
      const n = ++options.seq.n;
      const name = `bench-${n % options.trends}`;
      const upload = n % 3 === 0;
      const body = upload ? png(options.uploadBytes) : promptYaml(name, n);
      const started = performance.now();
      const response = await fetch(
        upload ? `${baseUrl}/api/v1/trends/${name}/example` : `${baseUrl}/api/v1/prompts/${name}`,
        {
          method: 'PUT',
          headers: {
            authorization: `Bearer ${admin}`,
            'content-type': upload ? 'image/png' : 'application/yaml',
          },
          body,
        },
      );
      await response.arrayBuffer();
      const ms = performance.now() - started;
      if (response.status >= 300) {
        samples.errors++;
        continue;
      }
      (upload ? samples.exampleUpload : samples.promptPut).push(ms);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return samples;
}
