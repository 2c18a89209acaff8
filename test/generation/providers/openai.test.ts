/**
 * The OpenAI provider against a small HTTP server on 127.0.0.1 that answers in the images API's shape.
 * Everywhere else this project tests against the real thing; here a stand-in is right because the
 * real service is outside our reach (paid, rate-limited, and not reachable from CI).
 */
import sharp from 'sharp';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { OpenAIProvider, openAISize } from '../../../src/generation/providers/openai.ts';
import {
  createProvider,
  type GenerationRequest,
  PermanentProviderError,
  TransientProviderError,
} from '../../../src/generation/providers/provider.ts';
import { backoffMs, retryAfterMs } from '../../../src/generation/providers/retry.ts';
import { makePhoto } from '../support/images.ts';
import { b64Answer, errorAnswer, type ImagesApi, type Reply, startImagesApi } from '../support/images-api.ts';

const API_KEY = 'sk-test-0123456789abcdefSECRET';
let photo: Buffer;
let result: Buffer;
let api: ImagesApi | undefined;

beforeAll(async () => {
  photo = await makePhoto({ width: 800, height: 600, format: 'png' });
  result = await makePhoto({ width: 256, height: 256, format: 'png' });
});

afterEach(async () => {
  await api?.close();
  api = undefined;
});

async function serve(...replies: Reply[]): Promise<ImagesApi> {
  api = await startImagesApi(replies);
  return api;
}

function provider(server: ImagesApi, options: { maxAttempts?: number; timeoutMs?: number } = {}) {
  // random: () => 0 keeps the jittered backoff at its floor so the retry tests stay quick.
  return new OpenAIProvider({ apiKey: API_KEY, baseUrl: server.baseUrl, random: () => 0, ...options });
}

function request(overrides: Partial<GenerationRequest> = {}): GenerationRequest {
  return {
    prompt: 'Turn the person into a hand-painted anime portrait',
    negative: 'blurry, extra fingers',
    model: 'gpt-image-1',
    parameters: { seed: 3, size: 'large' },
    trend: {
      slug: 'ghibli-portrait',
      title: 'Ghibli portrait',
      params: { quality: 'high', tint: '#ff0000' },
    },
    input: { bytes: photo, contentType: 'image/png' },
    variant: 0,
    ...overrides,
  };
}

function expectNoKey(error: unknown): void {
  let current = error as { message?: string; cause?: unknown } | undefined;
  while (current) {
    expect(String(current.message)).not.toContain(API_KEY);
    expect(String(current)).not.toContain(API_KEY);
    current = current.cause as typeof current;
  }
}

describe('openai provider', () => {
  it('sends model, prompt, negative, size and the photo as multipart with the key, and decodes b64_json', async () => {
    const server = await serve(b64Answer(result));
    const image = await provider(server).generate(request());
    expect(image).toEqual({ bytes: result, contentType: 'image/png' });

    expect(server.received).toHaveLength(1);
    const sent = server.received[0]!;
    expect(sent.method).toBe('POST');
    expect(sent.path).toBe('/v1/images/edits');
    expect(sent.headers.authorization).toBe(`Bearer ${API_KEY}`);
    const form = sent.form!;
    expect(form.get('model')).toBe('gpt-image-1');
    expect(form.get('prompt')).toBe(
      'Turn the person into a hand-painted anime portrait. Avoid: blurry, extra fingers',
    );
    expect(form.get('n')).toBe('1');
    expect(form.get('size')).toBe('1024x1024');
    expect(form.get('quality')).toBe('high');
    // GPT image models reject response_format; the local renderer's parameters are not sent either.
    expect(form.has('response_format')).toBe(false);
    expect(form.has('tint')).toBe(false);
    const file = form.get('image') as File;
    expect(file.type).toBe('image/png');
    expect(Buffer.from(await file.arrayBuffer()).equals(photo)).toBe(true);
  });

  it('asks DALL·E-style models for b64_json and fetches a URL answer without sending the key there', async () => {
    const server = await serve((origin) => ({
      status: 200,
      json: { data: [{ url: `${origin}/files/out.png` }] },
    }));
    server.files.set('out.png', result);
    const image = await provider(server).generate(
      request({ model: 'dall-e-2', parameters: { size: 'small' } }),
    );
    expect(image.bytes.equals(result)).toBe(true);
    const form = server.received[0]!.form!;
    expect(form.get('response_format')).toBe('b64_json');
    expect(form.get('size')).toBe('512x512');
    expect(server.received.map((r) => r.path)).toEqual(['/v1/images/edits', '/files/out.png']);
    expect(server.received[1]!.headers.authorization).toBeUndefined();
  });

  it('sends a large or rotated photo upright and at most 2048 px, as hd in its orientation', async () => {
    const server = await serve(b64Answer(result));
    // Stored 3000x2000 with EXIF orientation 6: shown as a 2000x3000 portrait.
    const big = await makePhoto({ width: 3000, height: 2000, orientation: 6 });
    await provider(server).generate(
      request({ parameters: { size: 'hd' }, input: { bytes: big, contentType: 'image/jpeg' } }),
    );
    const form = server.received[0]!.form!;
    const file = form.get('image') as File;
    const meta = await sharp(Buffer.from(await file.arrayBuffer())).metadata();
    expect(meta).toMatchObject({ format: 'jpeg', width: 1365, height: 2048 });
    expect(meta.orientation ?? 1).toBe(1);
    expect(form.get('size')).toBe('1024x1536');
  });

  it('waits as long as Retry-After says after a 429, then succeeds', async () => {
    const server = await serve(
      errorAnswer(429, 'Rate limit reached', { 'retry-after': '1' }),
      b64Answer(result),
    );
    const image = await provider(server).generate(request());
    expect(image.bytes.equals(result)).toBe(true);
    expect(server.received).toHaveLength(2);
    expect(server.received[1]!.at - server.received[0]!.at).toBeGreaterThanOrEqual(990);
  });

  it('retries a dropped connection', async () => {
    const server = await serve('reset', b64Answer(result));
    const image = await provider(server).generate(request());
    expect(image.bytes.equals(result)).toBe(true);
    expect(server.received).toHaveLength(2);
  });

  it('gives up after maxAttempts 500s with a transient error carrying the server’s message', async () => {
    const server = await serve(errorAnswer(500, 'The server had an error while processing your request.'));
    const error = await provider(server)
      .generate(request())
      .catch((e) => e);
    expect(error).toBeInstanceOf(TransientProviderError);
    expect(error.message).toContain('The server had an error while processing your request.');
    expect(error.message).toContain('3 attempts');
    expect(error.status).toBe(500);
    expect(server.received).toHaveLength(3);
  });

  it('fails at once with a permanent error carrying a policy refusal’s text', async () => {
    const server = await serve(errorAnswer(400, 'Your request was rejected by the safety system'));
    const error = await provider(server)
      .generate(request())
      .catch((e) => e);
    expect(error).toBeInstanceOf(PermanentProviderError);
    expect(error.message).toContain('Your request was rejected by the safety system');
    expect(error.status).toBe(400);
    expect(server.received).toHaveLength(1);
  });

  it('times out a hanging server within the timeout, as a transient error', async () => {
    const server = await serve('hang');
    const started = Date.now();
    const error = await provider(server, { timeoutMs: 600 })
      .generate(request())
      .catch((e) => e);
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(TransientProviderError);
    expect(error.message).toMatch(/did not answer within 0\.6 s/);
    expect(elapsed).toBeGreaterThanOrEqual(550);
    expect(elapsed).toBeLessThan(1500);
    expect(server.received).toHaveLength(1);
  });

  it('does not start a retry whose wait would overrun the timeout', async () => {
    const server = await serve(errorAnswer(503, 'overloaded', { 'retry-after': '30' }), b64Answer(result));
    const started = Date.now();
    const error = await provider(server, { timeoutMs: 2000 })
      .generate(request())
      .catch((e) => e);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(error).toBeInstanceOf(TransientProviderError);
    // The worker can honour the provider's wait when it schedules its own retry.
    expect(error.retryAfterMs).toBe(30_000);
    expect(server.received).toHaveLength(1);
  });

  it('rejects with the caller’s reason when the worker aborts, without retrying', async () => {
    const server = await serve('hang');
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('lease lost')), 200);
    const started = Date.now();
    const error = await provider(server)
      .generate(request({ signal: controller.signal }))
      .catch((e) => e);
    expect(error.message).toBe('lease lost');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('never puts the API key into an error message, even when the server echoes it', async () => {
    const failures: Array<[Reply, new (...args: never[]) => Error]> = [
      [errorAnswer(401, `Incorrect API key provided: ${API_KEY}.`), PermanentProviderError],
      [errorAnswer(500, `upstream said: Bearer ${API_KEY}`), TransientProviderError],
      [{ status: 502, body: `<html><body>Bad gateway for ${API_KEY}</body></html>` }, TransientProviderError],
      ['reset', TransientProviderError],
      ['hang', TransientProviderError],
    ];
    for (const [reply, kind] of failures) {
      const server = await startImagesApi([reply]);
      try {
        const error = await provider(server, { maxAttempts: 2, timeoutMs: 800 })
          .generate(request())
          .catch((e) => e);
        expect(error).toBeInstanceOf(kind);
        expectNoKey(error);
      } finally {
        await server.close();
      }
    }
    const closed = new OpenAIProvider({ apiKey: API_KEY, baseUrl: 'http://127.0.0.1:1/v1', maxAttempts: 1 });
    const unreachable = await closed.generate(request()).catch((e) => e);
    expect(unreachable).toBeInstanceOf(TransientProviderError);
    expect(unreachable.message).toMatch(/could not be reached/);
    expectNoKey(unreachable);
  });

  it('treats an answer without an image as transient, and a photo it cannot decode as permanent', async () => {
    const server = await serve({ status: 200, json: { data: [] } });
    const error = await provider(server, { maxAttempts: 1 })
      .generate(request())
      .catch((e) => e);
    expect(error).toBeInstanceOf(TransientProviderError);
    const bad = await provider(server)
      .generate(request({ input: { bytes: Buffer.from('not a photo'), contentType: 'image/jpeg' } }))
      .catch((e) => e);
    expect(bad).toBeInstanceOf(PermanentProviderError);
    expect(bad.message).toMatch(/^The photo could not be decoded as an image/);
    expect(server.received).toHaveLength(1);
  });
});

describe('createProvider', () => {
  const config = (env: Record<string, string>) => loadConfig(env, { dotEnv: false });

  it('needs OPENAI_API_KEY for IMAGE_PROVIDER=openai', () => {
    expect(() => createProvider(config({ IMAGE_PROVIDER: 'openai' }))).toThrow(/OPENAI_API_KEY must be set/);
    expect(createProvider(config({})).name).toBe('local');
  });

  it('sends prompts whose model is `local` to the offline renderer even with IMAGE_PROVIDER=openai', async () => {
    const server = await serve(b64Answer(result));
    const chosen = createProvider(
      config({ IMAGE_PROVIDER: 'openai', OPENAI_API_KEY: API_KEY, OPENAI_BASE_URL: server.baseUrl }),
    );
    expect(chosen.name).toBe('openai');
    const local = await chosen.generate(request({ model: 'local', parameters: { size: 'small', seed: 1 } }));
    expect(local.contentType).toBe('image/png');
    expect(server.received).toHaveLength(0);
    await chosen.generate(request());
    expect(server.received).toHaveLength(1);
  });
});

describe('retry helpers', () => {
  it('reads Retry-After in seconds, as an HTTP date, and retry-after-ms, capped at 60 s', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs(new Headers({ 'retry-after': '2' }), now)).toBe(2000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:05 GMT' }), now)).toBe(5000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'Wed, 31 Dec 2025 00:00:00 GMT' }), now)).toBe(0);
    expect(retryAfterMs(new Headers({ 'retry-after': '3600' }), now)).toBe(60_000);
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '250', 'retry-after': '9' }), now)).toBe(250);
    expect(retryAfterMs(new Headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(retryAfterMs(new Headers(), now)).toBeUndefined();
  });

  it('backs off exponentially with jitter, up to a cap', () => {
    expect([1, 2, 3].map((n) => backoffMs(n, () => 0))).toEqual([250, 500, 1000]);
    expect([1, 2, 3].map((n) => backoffMs(n, () => 1))).toEqual([500, 1000, 2000]);
    expect(backoffMs(30, () => 1)).toBe(20_000);
  });

  it('maps size tiers to sizes the images API accepts', () => {
    expect(openAISize('gpt-image-1', 'small', 800, 600)).toBe('1024x1024');
    expect(openAISize('gpt-image-1', 'hd', 800, 600)).toBe('1536x1024');
    expect(openAISize('gpt-image-1', 'hd', 600, 800)).toBe('1024x1536');
    expect(openAISize('gpt-image-1', 'hd', 800, 790)).toBe('1024x1024');
    expect(openAISize('dall-e-2', 'small', 800, 600)).toBe('512x512');
    expect(openAISize('dall-e-2', 'hd', 800, 600)).toBe('1024x1024');
  });
});
