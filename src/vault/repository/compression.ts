import { compress, decompress } from '@mongodb-js/zstd';

export const COMPRESSION_NONE = 0;
export const COMPRESSION_ZSTD = 1;
export type CompressionCode = typeof COMPRESSION_NONE | typeof COMPRESSION_ZSTD;

/** Below this many bytes a zstd frame's own overhead eats what it could save. */
const TINY = 64;
/** Keep the raw form unless zstd saves at least 3%: decompressing costs CPU on every restore. */
const MIN_SAVING = 0.03;

/**
 * Formats that are compressed already (the service's images, archives): trying zstd on them only
 * burns CPU. The signatures are the files' magic numbers.
 */
export function looksCompressed(head: Uint8Array): boolean {
  const starts = (...bytes: number[]) => bytes.every((b, i) => head[i] === b);
  return (
    starts(0xff, 0xd8, 0xff) || // JPEG
    starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a) || // PNG
    (starts(0x52, 0x49, 0x46, 0x46) && Buffer.from(head.subarray(8, 12)).toString('latin1') === 'WEBP') || // WebP
    starts(0x1f, 0x8b) || // gzip
    starts(0x28, 0xb5, 0x2f, 0xfd) // zstd
  );
}

/**
 * The payload to store and how it is encoded. `hint` false skips zstd (the caller knows the data is
 * compressed, e.g. a later chunk of a JPEG); undefined decides by sniffing and by the result.
 */
export async function maybeCompress(
  plain: Buffer,
  level: number,
  hint?: boolean,
): Promise<{ compression: CompressionCode; payload: Buffer }> {
  if (hint === false || plain.length < TINY || (hint === undefined && looksCompressed(plain))) {
    return { compression: COMPRESSION_NONE, payload: plain };
  }
  const packed = await compress(plain, level);
  if (packed.length > plain.length * (1 - MIN_SAVING))
    return { compression: COMPRESSION_NONE, payload: plain };
  return { compression: COMPRESSION_ZSTD, payload: packed };
}

export function unpack(compression: number, payload: Buffer): Promise<Buffer> {
  return compression === COMPRESSION_ZSTD ? decompress(payload) : Promise.resolve(payload);
}
