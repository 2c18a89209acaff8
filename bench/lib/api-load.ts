import { randomBytes } from 'node:crypto';

export interface ApiSamples {
  promptPut: number[];
  exampleUpload: number[];
  errors: number;
  /** What the last failed request was answered, so a round with errors says why. */
  lastError: string | undefined;
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

/**
 * Real PNGs of about `size` bytes, each different (random noise does not compress): the service decodes every
 * upload, and stores identical bytes once. Made before a round, so their encoding is not in its timings.
 */
export async function noisePngs(count: number, size: number): Promise<Buffer[]> {
  const { default: sharp } = await import('sharp');
  const side = Math.max(8, Math.round(Math.sqrt(size / 3)));
  return await Promise.all(
    Array.from({ length: count }, () =>
      sharp(randomBytes(side * side * 3), { raw: { width: side, height: side, channels: 3 } })
        .png({ compressionLevel: 1 })
        .toBuffer(),
    ),
  );
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
  const samples: ApiSamples = { promptPut: [], exampleUpload: [], errors: 0, lastError: undefined };
  const images = await noisePngs(Math.ceil(options.requests / 3) + 1, options.uploadBytes);
  let left = options.requests;
  const worker = async () => {
    while (left > 0) {
      left--;
      const n = ++options.seq.n;
      const name = `bench-${n % options.trends}`;
      const upload = n % 3 === 0;
      const body = upload ? images.pop()! : promptYaml(name, n);
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
        samples.lastError = `${upload ? 'upload' : 'prompt PUT'} answered ${response.status}`;
        continue;
      }
      (upload ? samples.exampleUpload : samples.promptPut).push(ms);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return samples;
}
