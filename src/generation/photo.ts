import sharp, { type Metadata } from 'sharp';
import { undecodablePhoto } from './providers/errors.ts';
import { MAX_INPUT_PIXELS } from './providers/sizes.ts';

/**
 * Bounds what sharp keeps in native memory in the worker process. libvips' operation cache (50 MB and 100
 * operations by default) kept decoded photos alive between variants; more than one libvips thread per
 * pipeline multiplies the buffers each keeps (glibc's allocator gives each thread its own arena).
 * Measured on a 49-megapixel progressive JPEG: docs/benchmarks.md, "The worker's memory".
 */
export function limitImageMemory(): void {
  sharp.cache(false);
  sharp.concurrency(1);
}

/**
 * The long side of the photo the providers work from. The local renderer draws at most 1536 px, the
 * images API takes at most 1536 px and is sent at most 2048 (providers/openai-form.ts): nothing above is used.
 */
export const WORKING_SIDE = 2048;

/** Full-size decodes in this process, one at a time: each may hold ~150 MB (a 49 MP progressive JPEG). */
let decoding: Promise<unknown> = Promise.resolve();

/**
 * The photo a job's variants are rendered from: decoded once per job (not once per variant), upright
 * (EXIF orientation applied), at most WORKING_SIDE on its long side. Small upright photos pass unchanged.
 */
export async function workingPhoto(
  bytes: Buffer,
  contentType: string,
): Promise<{ bytes: Buffer; contentType: string }> {
  const open = () =>
    sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error', sequentialRead: true });
  let meta: Metadata;
  try {
    meta = await open().metadata();
  } catch (error) {
    throw undecodablePhoto(error);
  }
  const { width = 0, height = 0 } = meta;
  if ((meta.orientation ?? 1) === 1 && Math.max(width, height) <= WORKING_SIDE) return { bytes, contentType };
  const shrink = async () => {
    // Resize first in the pipeline, so JPEG and WebP shrink while they decode (a fraction of the pixels).
    const image = open()
      .autoOrient()
      .resize({ width: WORKING_SIDE, height: WORKING_SIDE, fit: 'inside', withoutEnlargement: true });
    // PNG keeps transparency; JPEG at 92 is what the images API would have been sent anyway.
    return meta.hasAlpha
      ? { bytes: await image.png().toBuffer(), contentType: 'image/png' }
      : { bytes: await image.jpeg({ quality: 92 }).toBuffer(), contentType: 'image/jpeg' };
  };
  const run = decoding.then(shrink, shrink);
  decoding = run.catch(() => {});
  try {
    return await run;
  } catch (error) {
    throw undecodablePhoto(error);
  }
}
