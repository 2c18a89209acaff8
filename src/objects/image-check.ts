import { InvalidImageError } from './errors.ts';
import { checkImageStructure, MAX_JPEG_SCANS } from './image-structure.ts';
import type { DetectedType } from './sniff.ts';

/**
 * Decompression-bomb guard for every decode of a user's photo: a 20 MB upload can declare billions of
 * pixels. 50 MP covers what phones take (48 MP sensors) while bounding decode memory. Uploads are checked
 * against it here and the generation providers decode with it (generation/providers/sizes.ts re-exports it).
 */
export const MAX_INPUT_PIXELS = 50_000_000;

/**
 * How long one upload's decode may take. A 49-megapixel WebP, the slowest accepted image, decodes in about
 * 5 s on two shared cores; libvips stops the pipeline at its next progress report past this.
 */
export const DECODE_TIMEOUT_SECONDS = 15;

/**
 * The worker's decode options (providers/local.ts), one level stricter: `failOn: 'warning'`, sharp's advice
 * for untrusted input. At 'error' a JPEG cut in half and closed with an EOI marker decodes (its lower half
 * grey) and would be stored; at 'warning' it is refused. Whatever passes here also passes the worker's
 * 'error' level. Benign oddities (bytes before a marker, a wrong CRC on a text chunk) still pass.
 */
const DECODE = { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'warning', sequentialRead: true } as const;

/**
 * Decodes (upload checks, console previews) run one at a time per process: each may hold up to ~150 MB of native memory (a 49-megapixel
 * progressive JPEG keeps every DCT coefficient), so parallel uploads would add those up. The wait is async.
 */
let decoding: Promise<unknown> = Promise.resolve();

export function decodeOneAtATime<T>(work: () => Promise<T>): Promise<T> {
  const run = decoding.then(work, work);
  decoding = run.catch(() => {});
  return run;
}

const NAMES: Record<string, string> = { 'image/png': 'PNG', 'image/jpeg': 'JPEG', 'image/webp': 'WebP' };

/**
 * Refuses, with one sentence, an upload that is not exactly one intact image within the pixel limit: bytes
 * after the image's end (a polyglot), a truncated file, a decompression bomb, or bytes that do not decode.
 * The file is read from disk (the spooled upload), never copied into memory whole.
 */
export async function checkImageFile(file: string, type: DetectedType): Promise<void> {
  const name = NAMES[type.contentType] ?? 'image';
  const structure = await checkImageStructure(file, type);
  if (!structure.ok) {
    if (structure.problem === 'trailing') {
      throw new InvalidImageError(
        `The ${name} image is followed by ${structure.extraBytes} bytes that are not part of it (another file appended, or a camera's trailer such as a motion photo): save it again as a plain ${name} and upload that.`,
      );
    }
    if (structure.problem === 'scans') {
      throw new InvalidImageError(
        `The JPEG image has more than ${MAX_JPEG_SCANS} progressive scans, too many to decode safely: save it again as an ordinary JPEG and upload that.`,
      );
    }
    if (structure.problem === 'truncated') {
      throw new InvalidImageError(
        `The ${name} image is truncated (the file ends before the image does): upload the complete file.`,
      );
    }
    throw new InvalidImageError(
      `The ${name} image is malformed and cannot be decoded: upload an intact PNG, JPEG or WebP file.`,
    );
  }
  await decodeOneAtATime(() => decodeFully(file, name));
}

async function decodeFully(file: string, name: string): Promise<void> {
  // Loaded here, not with the module: libvips takes 0.17 s to load, and the backup and restore commands reach
  // this module (through the object store) without ever checking an upload.
  const { default: sharp } = await import('sharp');
  let pixels: number;
  try {
    // The header only (no limit needed to read it), so the refusal can say how large the image is. Every
    // frame of an animation counts: the pixel limit applies to all of them together.
    const meta = await sharp(file, { ...DECODE, limitInputPixels: false, pages: -1 }).metadata();
    const frameHeight = meta.pageHeight ?? meta.height ?? 0;
    pixels = (meta.width ?? 0) * frameHeight * (meta.pages ?? 1);
  } catch (error) {
    throw undecodable(name, error);
  }
  if (pixels > MAX_INPUT_PIXELS) throw tooLarge(pixels);
  try {
    // Every byte of the compressed data is decoded; the output is shrunk as it comes (JPEG and WebP scale
    // while decoding, as the worker's resize does), so memory stays near what the format itself needs.
    await sharp(file, { ...DECODE, pages: -1 })
      .timeout({ seconds: DECODE_TIMEOUT_SECONDS })
      .resize(64, 64, { fit: 'inside' })
      .raw()
      .toBuffer();
  } catch (error) {
    const message = (error as Error).message ?? '';
    if (/pixel limit/i.test(message)) throw tooLarge(pixels);
    if (/^timeout/i.test(message)) {
      throw new InvalidImageError(
        `The image took longer than ${DECODE_TIMEOUT_SECONDS} s to decode: upload a smaller or simpler ${name} image.`,
      );
    }
    throw undecodable(name, error);
  }
}

function tooLarge(pixels: number): InvalidImageError {
  return new InvalidImageError(
    `The image has ${pixels} pixels, more than the limit of ${MAX_INPUT_PIXELS} (50 megapixels): scale it down and upload it again.`,
  );
}

function undecodable(name: string, error: unknown): InvalidImageError {
  // libvips reasons are short but may span lines; the sentence keeps the first, without its final stop.
  const reason = ((error as Error).message ?? String(error)).split('\n')[0]!.trim().replace(/\.$/, '');
  return new InvalidImageError(
    `The ${name} image could not be decoded (${reason.slice(0, 200)}): upload an intact PNG, JPEG or WebP file.`,
  );
}
