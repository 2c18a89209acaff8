import { type Config, ConfigError } from '../../config/config.ts';
import { LocalProvider } from './local.ts';
import { OpenAIProvider } from './openai.ts';
import type { SizeTier } from './sizes.ts';

export { PermanentProviderError, ProviderError, TransientProviderError } from './errors.ts';
export { DEFAULT_SIZE_TIER, MAX_INPUT_PIXELS, SIZE_TIERS, type SizeTier, sizeTier } from './sizes.ts';

export interface GenerationRequest {
  /** Already rendered from the template. */
  prompt: string;
  negative?: string;
  /** `local` or a provider model name. */
  model: string;
  parameters: {
    temperature?: number;
    seed?: number;
    size?: SizeTier;
    [k: string]: unknown;
  };
  trend: { slug: string; title: string; params: Record<string, string | number | boolean> };
  /** The user's photo. */
  input: { bytes: Buffer; contentType: string };
  /** 0..n-1; with a fixed seed, variant k must be repeatable. */
  variant: number;
  /** The worker aborts on timeout or lease loss; an aborted call rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface GeneratedImage {
  bytes: Buffer;
  contentType: 'image/png' | 'image/jpeg' | 'image/webp';
}

export interface ImageProvider {
  readonly name: string;
  generate(request: GenerationRequest): Promise<GeneratedImage>;
}

export interface ProviderOptions {
  /** For tests and proxies; defaults to the global fetch. */
  fetch?: typeof fetch;
  /** HTTP attempts per generate() call, retries on 429/5xx/network errors included. Default 3. */
  maxAttempts?: number;
  /** Budget for one generate() call, all attempts and waits included. Default 180 s. */
  timeoutMs?: number;
}

/**
 * The provider IMAGE_PROVIDER names. With `openai`, a prompt whose model is `local` still goes to the
 * offline renderer, so trends can be moved to the paid model one at a time.
 */
export function createProvider(config: Config, options: ProviderOptions = {}): ImageProvider {
  const local = new LocalProvider();
  if (config.imageProvider === 'local') return local;
  const apiKey = config.openai.apiKey?.trim();
  if (!apiKey) {
    throw new ConfigError('OPENAI_API_KEY must be set when IMAGE_PROVIDER=openai.');
  }
  const remote = new OpenAIProvider({ apiKey, baseUrl: config.openai.baseUrl, ...options });
  return {
    name: remote.name,
    generate: (request) => (request.model === 'local' ? local : remote).generate(request),
  };
}
