import { crc32 } from 'node:zlib';
import sharp from 'sharp';

/**
 * A synthetic "photo": gradients and shapes give the renderer real colour and structure to work on,
 * and it is built here so the tests need no binary fixtures.
 */
export async function makePhoto(
  options: { width?: number; height?: number; format?: 'jpeg' | 'png' | 'webp'; orientation?: number } = {},
): Promise<Buffer> {
  const { width = 1600, height = 1200, format = 'jpeg' } = options;
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#4a90d9"/>` +
    `<stop offset="1" stop-color="#e8c170"/></linearGradient></defs>` +
    `<rect width="100%" height="100%" fill="url(#g)"/>` +
    `<circle cx="${width / 2}" cy="${height * 0.4}" r="${Math.min(width, height) / 4}" fill="#d9a07a"/>` +
    `<rect x="${width * 0.3}" y="${height * 0.65}" width="${width * 0.4}" height="${height * 0.35}" fill="#335533"/></svg>`;
  let image = sharp(Buffer.from(svg)).flatten({ background: '#ffffff' });
  if (options.orientation) image = image.withMetadata({ orientation: options.orientation });
  return image.toFormat(format).toBuffer();
}

/** Raw RGB pixels at a given size, for comparing images of different formats and sizes. */
export async function pixels(bytes: Buffer, width: number, height: number): Promise<Buffer> {
  return sharp(bytes).autoOrient().resize(width, height, { fit: 'fill' }).removeAlpha().raw().toBuffer();
}

/** Mean absolute difference per channel value, 0..255. */
export function meanDifference(a: Buffer, b: Buffer): number {
  if (a.length !== b.length) throw new Error(`different sizes: ${a.length} and ${b.length}`);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

/** Mean of each channel (r, g, b), 0..255. */
export async function meanColour(bytes: Buffer): Promise<{ r: number; g: number; b: number }> {
  const { channels } = await sharp(bytes).stats();
  return { r: channels[0]!.mean, g: channels[1]!.mean, b: channels[2]!.mean };
}

/**
 * A valid 1x1 PNG whose header claims width x height: what a decompression bomb looks like to a
 * decoder before it allocates.
 */
export async function pngClaiming(width: number, height: number): Promise<Buffer> {
  const png = Buffer.from(
    await sharp({ create: { width: 1, height: 1, channels: 3, background: '#808080' } })
      .png()
      .toBuffer(),
  );
  // Signature (8) + IHDR length (4) + "IHDR" (4): width and height follow, then the chunk's CRC.
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
  return png;
}
