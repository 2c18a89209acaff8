import { z } from 'zod';
import { detectImageType } from '../../objects/sniff.ts';
import { PermanentProviderError, TransientProviderError } from './errors.ts';
import { editForm } from './openai-form.ts';
import type { GeneratedImage, GenerationRequest, ImageProvider } from './types.ts';

export { foldNegative, openAISize } from './openai-form.ts';

import { backoffMs, retryAfterMs, sleep } from './retry.ts';

export interface OpenAIProviderOptions {
  apiKey: string;
  /** Up to and including the version, e.g. https://api.openai.com/v1. */
  baseUrl: string;
  fetch?: typeof fetch;
  maxAttempts?: number;
  timeoutMs?: number;
  /** Jitter source, replaceable so tests can pin the backoff. */
  random?: () => number;
}

export const DEFAULT_TIMEOUT_MS = 180_000;
export const DEFAULT_MAX_ATTEMPTS = 3;
/** A b64 PNG at 1536 px is ~5 MB; anything far beyond that is not an answer we want in memory. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
const responseSchema = z.object({
  data: z.array(z.object({ b64_json: z.string().min(1).nullish(), url: z.string().min(1).nullish() })).min(1),
});

/** `IMAGE_PROVIDER=openai`: POST {baseUrl}/images/edits with the user's photo. */
export class OpenAIProvider implements ImageProvider {
  readonly name = 'openai';
  readonly #apiKey: string;
  readonly #endpoint: string;
  readonly #fetch: typeof fetch;
  readonly #maxAttempts: number;
  readonly #timeoutMs: number;
  readonly #random: () => number;

  constructor(options: OpenAIProviderOptions) {
    if (!options.apiKey) throw new Error('OPENAI_API_KEY must be set when IMAGE_PROVIDER=openai.');
    this.#apiKey = options.apiKey;
    this.#endpoint = `${options.baseUrl.replace(/\/+$/, '')}/images/edits`;
    this.#fetch = options.fetch ?? fetch;
    this.#maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS));
    this.#timeoutMs = Math.max(1, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.#random = options.random ?? Math.random;
  }

  /**
   * One call stays within `timeoutMs`, retries and waits included, because the worker holds a lease
   * for a bounded time; a retry whose wait would overrun the budget is left to the worker instead.
   */
  async generate(request: GenerationRequest): Promise<GeneratedImage> {
    request.signal?.throwIfAborted();
    const form = await editForm(request);
    const deadline = Date.now() + this.#timeoutMs;
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
    let last: TransientProviderError | undefined;
    let attempts = 0;
    while (attempts < this.#maxAttempts) {
      attempts++;
      try {
        return await this.#attempt(form, signal);
      } catch (error) {
        if (request.signal?.aborted) throw request.signal.reason;
        if (timeout.aborted) throw this.#timedOut(last);
        if (!(error instanceof TransientProviderError)) throw error;
        last = error;
      }
      if (attempts >= this.#maxAttempts) break;
      const wait = last.retryAfterMs ?? backoffMs(attempts, this.#random);
      if (Date.now() + wait >= deadline) break;
      try {
        await sleep(wait, signal);
      } catch (error) {
        if (request.signal?.aborted) throw request.signal.reason;
        if (timeout.aborted) throw this.#timedOut(last);
        throw error;
      }
    }
    const tries = `${attempts} attempt${attempts === 1 ? '' : 's'}`;
    throw new TransientProviderError(`The image provider failed after ${tries}: ${last!.message}`, {
      status: last!.status,
      retryAfterMs: last!.retryAfterMs,
      cause: last,
    });
  }

  async #attempt(form: FormData, signal: AbortSignal): Promise<GeneratedImage> {
    const headers = { authorization: `Bearer ${this.#apiKey}`, accept: 'application/json' };
    const response = await this.#request(this.#endpoint, { method: 'POST', headers, body: form, signal });
    const body = await this.#read(response, signal);
    if (!response.ok) throw this.#refusal(response, body.toString('utf8'));
    let parsed: z.infer<typeof responseSchema>;
    try {
      parsed = responseSchema.parse(JSON.parse(body.toString('utf8')));
    } catch {
      throw new TransientProviderError(
        'The image provider answered without an image in data[0].b64_json or url.',
      );
    }
    const item = parsed.data[0]!;
    let bytes: Buffer;
    if (item.b64_json) {
      bytes = Buffer.from(item.b64_json, 'base64');
    } else {
      const url = new URL(item.url!);
      // Plain http only from a provider that is itself reached over http (a local compatible server):
      // an https provider pointing us at http:// is more likely a redirect into our own network.
      const allowed = this.#endpoint.startsWith('http:') ? ['https:', 'http:'] : ['https:'];
      if (!allowed.includes(url.protocol)) {
        throw new TransientProviderError(
          `The image provider answered with a ${url.protocol} URL, which we do not fetch.`,
        );
      }
      // No Authorization header: the URL is usually a signed link on another host, which must not see the key.
      const image = await this.#request(url.href, { signal });
      if (!image.ok) {
        throw new TransientProviderError(`The generated image could not be fetched: HTTP ${image.status}.`, {
          status: image.status,
        });
      }
      bytes = await this.#read(image, signal);
    }
    const type = detectImageType(bytes);
    if (!type)
      throw new TransientProviderError(
        'The image provider answered with bytes that are not a PNG, JPEG or WebP image.',
      );
    return { bytes, contentType: type.contentType as GeneratedImage['contentType'] };
  }

  async #request(url: string, init: RequestInit & { signal: AbortSignal }): Promise<Response> {
    try {
      return await this.#fetch(url, init);
    } catch (error) {
      if (init.signal.aborted) throw error;
      throw new TransientProviderError(`The image provider could not be reached: ${this.#describe(error)}.`, {
        cause: error,
      });
    }
  }

  async #read(response: Response, signal: AbortSignal): Promise<Buffer> {
    const declared = Number(response.headers.get('content-length') ?? 0);
    if (declared > MAX_RESPONSE_BYTES) {
      await response.body?.cancel();
      throw new TransientProviderError(
        `The image provider answered with ${declared} bytes, more than we accept.`,
      );
    }
    try {
      return Buffer.from(await response.arrayBuffer());
    } catch (error) {
      if (signal.aborted) throw error;
      throw new TransientProviderError(`The image provider's answer broke off: ${this.#describe(error)}.`, {
        cause: error,
      });
    }
  }

  #refusal(response: Response, text: string): Error {
    const status = response.status;
    const reason = this.#redact(errorText(text) ?? response.statusText ?? 'no reason given');
    if (status === 408 || status === 409 || status === 429 || status >= 500 || status < 400) {
      return new TransientProviderError(`HTTP ${status}: ${reason}`, {
        status,
        retryAfterMs: retryAfterMs(response.headers),
      });
    }
    return new PermanentProviderError(`The image provider refused the request (HTTP ${status}): ${reason}`, {
      status,
    });
  }

  #timedOut(last: TransientProviderError | undefined): TransientProviderError {
    const seconds = Math.round(this.#timeoutMs / 100) / 10;
    const before = last ? ` (the attempt before: ${last.message})` : '';
    return new TransientProviderError(`The image provider did not answer within ${seconds} s${before}.`, {
      status: last?.status,
    });
  }

  #describe(error: unknown): string {
    const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
    const detail = [cause?.message, cause?.code, (error as Error).message].find((v) => typeof v === 'string');
    return this.#redact(String(detail ?? error));
  }

  /** Belt and braces: a misbehaving proxy could echo the Authorization header into its error text. */
  #redact(text: string): string {
    return this.#apiKey.length >= 4 ? text.split(this.#apiKey).join('[redacted]') : text;
  }
}

/** `{error: {message}}` as OpenAI sends it, the looser shapes of look-alikes, or plain text. */
function errorText(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as {
      error?: { message?: unknown } | string;
      message?: unknown;
      detail?: unknown;
    };
    const candidates = [
      typeof body.error === 'object' ? body.error?.message : body.error,
      body.message,
      body.detail,
    ];
    const found = candidates.find((m): m is string => typeof m === 'string' && m.trim() !== '');
    if (found) return found.trim().slice(0, 1000);
  } catch {
    // Not JSON: a proxy's HTML or plain text page.
  }
  const plain = text
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return plain ? plain.slice(0, 500) : undefined;
}
