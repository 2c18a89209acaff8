import { type Config, ConfigError } from '../../config/config.ts';
import { LocalProvider } from './local.ts';
import { OpenAIProvider } from './openai.ts';
import type { ImageProvider, ProviderOptions } from './types.ts';

export { PermanentProviderError, ProviderError, TransientProviderError } from './errors.ts';
export { DEFAULT_SIZE_TIER, MAX_INPUT_PIXELS, SIZE_TIERS, type SizeTier, sizeTier } from './sizes.ts';
export type {
  GeneratedImage,
  GenerationRequest,
  ImageProvider,
  ProviderOptions,
} from './types.ts';

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
