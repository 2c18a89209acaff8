import sharp from 'sharp';
import { escapeXml } from './providers/local.ts';
import { MAX_INPUT_PIXELS } from './providers/sizes.ts';

export interface PreviewOptions {
  /** Longest side of the preview in pixels; smaller images are not enlarged. Default 512. */
  maxSide?: number;
  /** Text drawn diagonally across the preview; an empty string leaves it off. Default "trendgen". */
  watermark?: string;
}

export interface Preview {
  bytes: Buffer;
  contentType: 'image/webp';
}

export class PreviewError extends Error {
  override name = 'PreviewError';
}

/**
 * A small, watermarked copy of a result for lists and chats, as the classic service made: the full
 * image stays behind the object URL, the preview is what can be shown (and leaked) freely.
 */
export async function makePreview(bytes: Buffer, options: PreviewOptions = {}): Promise<Preview> {
  const maxSide = Math.max(16, Math.floor(options.maxSide ?? 512));
  const watermark = options.watermark ?? 'trendgen';
  try {
    // Resized first so the overlay can be drawn at the exact size sharp chose.
    const small = await sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' })
      .autoOrient()
      .resize({ width: maxSide, height: maxSide, fit: 'inside', withoutEnlargement: true })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    const { width, height } = small.info;
    let image = sharp(small.data, { raw: small.info });
    if (watermark.trim() !== '') {
      image = image.composite([{ input: Buffer.from(watermarkSvg(width, height, watermark.trim())) }]);
    }
    const out = await image.webp({ quality: 80, effort: 4 }).toBuffer();
    return { bytes: out, contentType: 'image/webp' };
  } catch (error) {
    throw new PreviewError(`The image could not be turned into a preview: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** White text with a dark outline reads on light and dark pictures alike; low opacity keeps the picture visible. */
function watermarkSvg(width: number, height: number, text: string): string {
  const diagonal = Math.hypot(width, height);
  const angle = (-Math.atan2(height, width) * 180) / Math.PI;
  // DejaVu Sans Bold averages ~0.62 em per character; the text spans about 70% of the diagonal.
  const size = Math.max(8, Math.min(diagonal * 0.12, (diagonal * 0.7) / (text.length * 0.62)));
  const stroke = Math.max(1, size * 0.05);
  const cx = width / 2;
  const cy = height / 2;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<text x="${cx}" y="${(cy + size * 0.36).toFixed(1)}" transform="rotate(${angle.toFixed(2)} ${cx} ${cy})" ` +
    `text-anchor="middle" font-family="'DejaVu Sans', sans-serif" font-weight="bold" font-size="${size.toFixed(1)}" ` +
    `fill="#ffffff" fill-opacity="0.4" stroke="#000000" stroke-opacity="0.3" stroke-width="${stroke.toFixed(1)}" ` +
    `paint-order="stroke">${escapeXml(text)}</text></svg>`
  );
}
