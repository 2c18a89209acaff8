/**
 * The two ways a provider can fail, as the worker must treat them. They live apart from
 * provider.ts so that the providers can import them without an import cycle through createProvider.
 */
export abstract class ProviderError extends Error {
  /** The HTTP status the provider answered with, when there was one. */
  readonly status: number | undefined;

  constructor(message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = options.status;
  }
}

/**
 * Retrying cannot help: bad input, a policy refusal, a rejected key, an unknown model
 * (400/401/403/404/422). The generation fails at once and `message` is the reason shown to people.
 */
export class PermanentProviderError extends ProviderError {
  override name = 'PermanentProviderError';
}

/**
 * The provider may succeed later: 429, 5xx, timeouts, connection resets. The worker retries with
 * backoff, waiting at least `retryAfterMs` when the provider said how long.
 */
export class TransientProviderError extends ProviderError {
  override name = 'TransientProviderError';
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options: { status?: number; cause?: unknown; retryAfterMs?: number } = {}) {
    super(message, options);
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** The user's photo is the problem: retrying cannot help and the reason says so in plain words. */
export function undecodablePhoto(error: unknown): PermanentProviderError {
  const reason = error instanceof Error ? error.message : String(error);
  return new PermanentProviderError(`The photo could not be decoded as an image: ${reason}`, {
    cause: error,
  });
}
