import type { SizeTier } from './sizes.ts';

/** What every image provider takes and gives; the factory that picks one is provider.ts. */
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
