import sharp, { type Metadata, type Sharp } from 'sharp';
import { undecodablePhoto } from './errors.ts';
import { MAX_INPUT_PIXELS, SIZE_TIERS, sizeTier } from './sizes.ts';
import { chooseStyle, type Rgb, type Style } from './style.ts';
import type { GeneratedImage, GenerationRequest, ImageProvider } from './types.ts';

const FONT = "'DejaVu Sans', 'Liberation Sans', sans-serif";

/** `IMAGE_PROVIDER=local`: an offline renderer, so the whole service works with no network and no key. */
export class LocalProvider implements ImageProvider {
  readonly name = 'local';

  async generate(request: GenerationRequest): Promise<GeneratedImage> {
    request.signal?.throwIfAborted();
    const { seed, ...rest } = request.parameters;
    const style = chooseStyle({
      prompt: request.prompt,
      seed: typeof seed === 'number' ? seed : undefined,
      variant: request.variant,
      title: request.trend.title,
      slug: request.trend.slug,
      params: { ...rest, ...request.trend.params },
    });
    const bytes = await render(request.input.bytes, SIZE_TIERS[sizeTier(request.parameters)], style);
    // sharp cannot be interrupted mid-render; a render takes well under a second, so checking after
    // is enough to keep a cancelled job from storing its result.
    request.signal?.throwIfAborted();
    return { bytes, contentType: 'image/png' };
  }
}

function decoder(bytes: Buffer): Sharp {
  return sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error', sequentialRead: true });
}

async function render(photo: Buffer, longSide: number, style: Style): Promise<Buffer> {
  let meta: Metadata;
  try {
    meta = await decoder(photo).metadata();
  } catch (error) {
    throw undecodablePhoto(error);
  }
  const source = meta.autoOrient ?? meta;
  if (!source.width || !source.height) throw undecodablePhoto(new Error('the image has no dimensions'));
  const scale = longSide / Math.max(source.width, source.height);
  const width = Math.max(1, Math.round(source.width * scale));
  const height = Math.max(1, Math.round(source.height * scale));
  // Resizing to the zoomed size and then cutting the window keeps JPEG shrink-on-load working,
  // which is most of the speed on large phone photos.
  const zoomedWidth = Math.ceil(width / style.crop.zoom);
  const zoomedHeight = Math.ceil(height / style.crop.zoom);
  const left = Math.floor((zoomedWidth - width) * style.crop.x);
  const top = Math.floor((zoomedHeight - height) * style.crop.y);
  const contrastOffset = 128 * (1 - style.contrast);
  try {
    // Two pipelines because sharp applies its operations in a fixed order: the grade must be done
    // before the tint and the overlay go on, or the caption and the frame would be graded too.
    const graded = await decoder(photo)
      .autoOrient()
      .resize(zoomedWidth, zoomedHeight, { fit: 'fill' })
      .extract({ left, top, width, height })
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .modulate({ brightness: style.brightness, saturation: style.saturation, hue: style.hue })
      .linear(style.contrast, contrastOffset)
      .raw()
      .toBuffer({ resolveWithObject: true });
    return await sharp(graded.data, { raw: graded.info })
      .composite([
        { input: solid(width, height, style.tint, style.tintStrength), blend: 'soft-light' },
        { input: Buffer.from(overlay(width, height, style)) },
      ])
      .removeAlpha()
      .png({ compressionLevel: 6, adaptiveFiltering: false })
      .toBuffer();
  } catch (error) {
    // Headers can be fine while the pixel data is broken (a truncated upload): still the photo's fault.
    throw undecodablePhoto(error);
  }
}

function solid(width: number, height: number, { r, g, b }: Rgb, alpha: number) {
  return { create: { width, height, channels: 4 as const, background: { r, g, b, alpha } } };
}

/** Frame, vignette and caption as one SVG, rasterised once by librsvg. */
export function overlay(width: number, height: number, style: Style): string {
  const short = Math.min(width, height);
  const parts: string[] = [];
  const defs: string[] = [];
  const ink = `rgb(${style.tint.r},${style.tint.g},${style.tint.b})`;
  if (style.frame === 'vignette') {
    // Several stops approximate a smooth falloff; two stops leave a visible ring where the ramp starts.
    const stops = [
      [0.45, 0],
      [0.7, 0.25],
      [0.87, 0.65],
      [1, 1],
    ]
      .map(
        ([at, k]) =>
          `<stop offset="${at}" stop-color="#000" stop-opacity="${(k! * style.vignette).toFixed(3)}"/>`,
      )
      .join('');
    defs.push(`<radialGradient id="v" cx="50%" cy="50%" r="75%">${stops}</radialGradient>`);
    parts.push(`<rect width="100%" height="100%" fill="url(#v)"/>`);
  }
  let captionBox = { y: 0, height: Math.round(short * 0.16) };
  if (style.frame === 'border') {
    const inset = Math.round(short * 0.035);
    const stroke = Math.max(2, Math.round(short * 0.008));
    parts.push(
      `<rect x="${inset}" y="${inset}" width="${width - 2 * inset}" height="${height - 2 * inset}" ` +
        `fill="none" stroke="#fff" stroke-opacity="0.85" stroke-width="${stroke}"/>`,
    );
  }
  const polaroid = style.frame === 'polaroid';
  if (polaroid) {
    const side = Math.round(short * 0.045);
    const bottom = Math.round(short * 0.17);
    // One path with an even-odd hole: the photo shows through the window, the paper is the rest.
    parts.push(
      `<path fill-rule="evenodd" fill="#f6f1e7" d="M0 0H${width}V${height}H0Z ` +
        `M${side} ${side}V${height - bottom}H${width - side}V${side}Z"/>`,
    );
    captionBox = { y: height - bottom, height: bottom };
  } else if (style.captionAt === 'bottom') {
    captionBox.y = height - captionBox.height;
  }
  if (style.caption !== undefined) {
    const text = escapeXml(style.caption);
    // DejaVu Sans Bold averages ~0.62 em per character; fit the title into 86% of the width.
    const size = Math.max(
      10,
      Math.round(Math.min(short * 0.075, (width * 0.86) / (style.caption.length * 0.62))),
    );
    const baseline = captionBox.y + captionBox.height / 2 + size * 0.36;
    if (!polaroid) {
      defs.push(
        `<linearGradient id="c" x1="0" y1="${style.captionAt === 'bottom' ? 0 : 1}" x2="0" y2="${style.captionAt === 'bottom' ? 1 : 0}">` +
          `<stop offset="0" stop-color="#000" stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity="0.55"/></linearGradient>`,
      );
      parts.push(`<rect y="${captionBox.y}" width="${width}" height="${captionBox.height}" fill="url(#c)"/>`);
    }
    const fill = polaroid ? '#2b2b2b' : '#ffffff';
    const outline = polaroid
      ? ''
      : ` stroke="${ink}" stroke-width="${Math.max(1, size * 0.06).toFixed(1)}" paint-order="stroke"`;
    parts.push(
      `<text x="${width / 2}" y="${baseline.toFixed(1)}" text-anchor="middle" font-family="${FONT}" ` +
        `font-weight="bold" font-size="${size}" fill="${fill}"${outline}>${text}</text>`,
    );
  }
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<defs>${defs.join('')}</defs>${parts.join('')}</svg>`
  );
}

/** Titles come from admins and may hold anything; XML 1.0 also forbids most control characters. */
export function escapeXml(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}
