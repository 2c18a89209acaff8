import { createRequire } from 'node:module';
import { decompress } from '@mongodb-js/zstd';

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
  const packed = await compressAt(plain, level);
  if (packed.length > plain.length * (1 - MIN_SAVING))
    return { compression: COMPRESSION_NONE, payload: plain };
  return { compression: COMPRESSION_ZSTD, payload: packed };
}

/**
 * The native binding itself: the package's wrapper (`compress(data)`, @mongodb-js/zstd 1.2) drops the level it
 * is given, so every payload was compressed at zstd's default of 3. Errors from the binding carry no stack;
 * they are wrapped, as the package does.
 */
const zstdBinding = createRequire(import.meta.url)('@mongodb-js/zstd/bindings') as {
  compress(data: Buffer, level: number): Promise<Buffer>;
};

export async function compressAt(plain: Buffer, level: number): Promise<Buffer> {
  try {
    return await zstdBinding.compress(plain, level);
  } catch (error) {
    throw new Error(`zstd: ${(error as Error).message}`);
  }
}

/**
 * The plaintext of a payload, refused (DecompressionLimitError) when its headers allow more than `limit`
 * bytes: checked before zstd inflates anything, so a small file cannot take gigabytes of memory.
 */
export async function unpack(compression: number, payload: Buffer, limit: number): Promise<Buffer> {
  if (compression !== COMPRESSION_ZSTD) return payload;
  const bound = zstdBound(payload, limit);
  if (bound > limit)
    throw new DecompressionLimitError(`would decompress to more than ${limit} bytes, the most it may hold`);
  if (bound < payload.length * WEBASSEMBLY_FROM_RATIO) {
    const plain = await decompress(payload);
    // A decoder that honours block sizes cannot exceed the bound; this is the last guard if one did not.
    if (plain.length > bound) throw new DecompressionLimitError('decompressed past its block headers');
    return plain;
  }
  // The decoder writes into exactly `bound` bytes: it cannot produce more than the block headers allow.
  return (await zstdDecoder()).decompress(payload, bound);
}

/**
 * From this bound-to-payload ratio a payload is decoded by libzstd compiled to WebAssembly, on the calling thread;
 * below it by the native binding, on libuv's thread pool. The binding grows its output as it decodes, which costs
 * little at ordinary ratios but dominates at high ones: 803 chunks of a pgbench base backup (ratio 22) took
 * 3.2-4.3 s of CPU against 0.8-0.95 s in WebAssembly (the zstd CLI 0.58 s), while 1.26 GB of dump-like text
 * (ratio 5.8) took 1.2-1.4 s against 1.2 s: there the binding keeps the work off the main thread, which a restore
 * of many objects needs.
 */
const WEBASSEMBLY_FROM_RATIO = 10;

type ZstdDecoder = typeof import('@foxglove/wasm-zstd');
let decoder: Promise<ZstdDecoder> | undefined;

/** Loaded on first use: commands that never decode a highly compressed payload do not pay for it. */
function zstdDecoder(): Promise<ZstdDecoder> {
  decoder ??= (async () => {
    const module = createRequire(import.meta.url)('@foxglove/wasm-zstd') as ZstdDecoder;
    await module.isLoaded;
    return module;
  })();
  return decoder;
}

const ZSTD_MAGIC = 0xfd2fb528;
/** The largest block a conforming zstd decoder produces (Block_Maximum_Size). */
const ZSTD_BLOCK_MAX = 128 * 1024;

export class DecompressionLimitError extends Error {
  override name = 'DecompressionLimitError';
}

/**
 * The most bytes a zstd payload can decompress to, read from its frame and block headers alone: raw and RLE
 * blocks state their size, a compressed block gives at most min(window, 128 KiB). Stops counting as soon as
 * the total passes `limit`, so a bomb of many tiny blocks is refused before a byte is inflated.
 */
export function zstdBound(payload: Buffer, limit: number): number {
  let pos = 0;
  let total = 0;
  const need = (bytes: number) => {
    if (pos + bytes > payload.length) throw new DecompressionLimitError('truncated zstd frame');
  };
  while (pos < payload.length) {
    need(4);
    const magic = payload.readUInt32LE(pos);
    pos += 4;
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      need(4);
      pos += 4 + payload.readUInt32LE(pos);
      continue;
    }
    if (magic !== ZSTD_MAGIC) throw new DecompressionLimitError('not a zstd frame');
    need(1);
    const descriptor = payload[pos++]!;
    const singleSegment = (descriptor >> 5) & 1;
    let window = Number.POSITIVE_INFINITY;
    if (!singleSegment) {
      need(1);
      const w = payload[pos++]!;
      const base = 2 ** (10 + (w >> 3));
      window = base + (base / 8) * (w & 7);
    }
    pos += [0, 1, 2, 4][descriptor & 3]!;
    const fcsFlag = descriptor >> 6;
    const fcsBytes = fcsFlag === 0 ? singleSegment : [0, 2, 4, 8][fcsFlag]!;
    need(fcsBytes);
    if (singleSegment) {
      // The whole frame is one segment: its window is its content size.
      window = fcsBytes === 1 ? payload[pos]! : Number(payload.readUIntLE(pos, Math.min(fcsBytes, 6)));
      if (fcsBytes === 2) window += 256;
      if (fcsBytes === 8 && payload.readUInt16LE(pos + 6) !== 0) window = Number.POSITIVE_INFINITY;
    }
    pos += fcsBytes;
    for (;;) {
      need(3);
      const header = payload.readUIntLE(pos, 3);
      pos += 3;
      const type = (header >> 1) & 3;
      const size = header >>> 3;
      if (type === 3) throw new DecompressionLimitError('reserved zstd block type');
      total += type === 2 ? Math.min(window, ZSTD_BLOCK_MAX) : size;
      pos += type === 1 ? 1 : size;
      if (total > limit) return total;
      if (header & 1) break;
    }
    if ((descriptor >> 2) & 1) pos += 4;
  }
  return total;
}
