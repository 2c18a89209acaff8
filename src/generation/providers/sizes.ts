/** Long side in pixels of each size a prompt can ask for (`parameters.size`). */
export const SIZE_TIERS = { small: 512, medium: 768, large: 1024, hd: 1536 } as const;
export type SizeTier = keyof typeof SIZE_TIERS;
/** What a prompt without `size` gets: the size most image models produce natively. */
export const DEFAULT_SIZE_TIER: SizeTier = 'large';

export function sizeTier(parameters: { size?: unknown }): SizeTier {
  const size = parameters.size;
  return typeof size === 'string' && Object.hasOwn(SIZE_TIERS, size) ? (size as SizeTier) : DEFAULT_SIZE_TIER;
}

// The same limit as every upload's decode check (objects/image-check.ts), so what was accepted decodes here.
export { MAX_INPUT_PIXELS } from '../../objects/image-check.ts';
