import sharp, { type Metadata } from 'sharp';
import { type DetectedType, detectImageType } from '../../objects/sniff.ts';
import { undecodablePhoto } from './errors.ts';
import { MAX_INPUT_PIXELS, type SizeTier, sizeTier } from './sizes.ts';
import type { GenerationRequest } from './types.ts';

/** Images-API parameters a trend may set; the others (tint, frame, …) belong to the local renderer. */
const PASS_THROUGH = [
  'quality',
  'background',
  'input_fidelity',
  'output_format',
  'output_compression',
  'moderation',
];

/** GPT image models always answer in base64 and reject `response_format`; DALL·E and most look-alikes need it. */
const isGptImageModel = (model: string) => /^(gpt-image|chatgpt-image)/i.test(model);

/**
 * The images API knows only a few sizes. GPT image models: 1024x1024, or 1536 on the photo's long side
 * for `hd`; DALL·E 2 and compatible servers: the smallest square at least as large as the tier.
 */
export function openAISize(model: string, tier: SizeTier, width: number, height: number): string {
  if (isGptImageModel(model)) {
    if (tier !== 'hd' || Math.abs(width - height) < Math.min(width, height) * 0.1) return '1024x1024';
    return width > height ? '1536x1024' : '1024x1536';
  }
  return tier === 'small' ? '512x512' : '1024x1024';
}

/** The multipart body of POST /images/edits; built once, sent again on each retry. */
export async function editForm(request: GenerationRequest): Promise<FormData> {
  const photo = await preparePhoto(request.input.bytes);
  const negative = request.negative?.trim();
  const form = new FormData();
  form.set('model', request.model);
  form.set('prompt', foldNegative(request.prompt, negative));
  form.set('n', '1');
  form.set('size', openAISize(request.model, sizeTier(request.parameters), photo.width, photo.height));
  if (!isGptImageModel(request.model)) form.set('response_format', 'b64_json');
  for (const key of PASS_THROUGH) {
    const value = request.trend.params[key] ?? request.parameters[key];
    if (typeof value === 'string' || typeof value === 'number') form.set(key, String(value));
  }
  const blob = new Blob([new Uint8Array(photo.bytes)], { type: photo.type.contentType });
  form.set('image', blob, `photo.${photo.type.extension}`);
  return form;
}

/** Larger photos only cost upload time: no images model answers above 1536 px. */
const MAX_PHOTO_SIDE = 2048;

/**
 * The photo as the API should see it: decodable (found here, before any money is spent), upright
 * (EXIF orientation applied, which image APIs may ignore), no larger than needed, in a format it takes.
 */
async function preparePhoto(
  bytes: Buffer,
): Promise<{ bytes: Buffer; type: DetectedType; width: number; height: number }> {
  const open = () => sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' });
  let meta: Metadata;
  try {
    meta = await open().metadata();
  } catch (error) {
    throw undecodablePhoto(error);
  }
  const { width = 0, height = 0 } = meta.autoOrient ?? meta;
  const type = detectImageType(bytes);
  if (type && (meta.orientation ?? 1) === 1 && Math.max(width, height) <= MAX_PHOTO_SIDE) {
    return { bytes, type, width, height };
  }
  try {
    const image = open().autoOrient().resize({
      width: MAX_PHOTO_SIDE,
      height: MAX_PHOTO_SIDE,
      fit: 'inside',
      withoutEnlargement: true,
    });
    // PNG keeps transparency, which the edits endpoint can use as a mask; JPEG keeps the upload small.
    const out = meta.hasAlpha
      ? await image.png().toBuffer({ resolveWithObject: true })
      : await image.jpeg({ quality: 92 }).toBuffer({ resolveWithObject: true });
    const outType = meta.hasAlpha
      ? { contentType: 'image/png', extension: 'png' }
      : { contentType: 'image/jpeg', extension: 'jpg' };
    return { bytes: out.data, type: outType, width: out.info.width, height: out.info.height };
  } catch (error) {
    throw undecodablePhoto(error);
  }
}

/**
 * The images API has no negative prompt, so it is said in words. One line: multipart turns newlines
 * into CRLF, which would make the prompt the provider sees differ from the one we recorded.
 */
export function foldNegative(prompt: string, negative: string | undefined): string {
  const text = prompt.trim();
  if (!negative) return text;
  return `${text}${/[.!?]$/.test(text) ? '' : '.'} Avoid: ${negative}`;
}
