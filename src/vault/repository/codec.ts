import {
  COMPRESSION_NONE,
  type CompressionCode,
  DecompressionLimitError,
  maybeCompress,
  unpack,
  zstdBound,
} from './compression.ts';
import { contentId, contentIdOffThread, type KeyMaterial, sealParts, unseal } from './crypto.ts';

/** What a stored file holds; the first header byte. Readers use it for reports, never to trust content. */
export const KIND = { data: 0, tree: 1, snapshot: 2, lock: 3 } as const;
export type Kind = keyof typeof KIND;
const KIND_NAMES = Object.keys(KIND) as Kind[];

const HEADER_BYTES = 2;

/** From this size a blob's id is checked off the main thread; below it the hand-off costs more than it frees. */
const OFF_THREAD_ID_BYTES = 256 * 1024;

/**
 * The most plaintext bytes one stored file may decode to, by what it is: checked before decompressing (and
 * before reading, for the small kinds), so that a small crafted file cannot take the memory of a restore.
 * Data and tree blobs get the larger of this and the chunker's largest chunk.
 */
export const DECODE_LIMITS = {
  blob: 32 * 1024 * 1024,
  snapshot: 16 * 1024 * 1024,
  small: 1024 * 1024,
} as const;

export class DecodeError extends Error {
  override name = 'DecodeError';
}

/**
 * The one encoding of every file except `config`: [kind, compression] ‖ payload, and when the
 * repository is encrypted, that whole thing sealed with AES-256-GCM (nonce ‖ ciphertext ‖ tag).
 */
export class Codec {
  constructor(
    private readonly keys: KeyMaterial | undefined,
    private readonly level: number,
  ) {}

  get encrypted(): boolean {
    return this.keys !== undefined;
  }

  /** The name of content: SHA-256, or HMAC-SHA-256 under the MAC key when encrypted. */
  idOf(plaintext: Buffer): string {
    return contentId(this.keys?.macKey, plaintext);
  }

  /** idOf on the thread pool: for readers that verify many large blobs while they write. */
  idOfOffThread(plaintext: Buffer): Promise<string> {
    return contentIdOffThread(this.keys?.macKey, plaintext);
  }

  /** `limit`: what a reader will accept; a zstd payload whose headers allow more is stored raw instead. */
  async encode(kind: Kind, plaintext: Buffer, compressHint?: boolean, limit?: number): Promise<Buffer> {
    return Buffer.concat(await this.encodeParts(kind, plaintext, compressHint, limit));
  }

  /**
   * encode's bytes as pieces whose concatenation they are: a pack writer copies each into its pack, which saves
   * allocating and copying every stored byte once more.
   */
  async encodeParts(
    kind: Kind,
    plaintext: Buffer,
    compressHint?: boolean,
    limit?: number,
  ): Promise<Buffer[]> {
    let { compression, payload } = await maybeCompress(plaintext, this.level, compressHint);
    if (compression !== COMPRESSION_NONE && limit !== undefined && zstdBound(payload, limit) > limit) {
      compression = COMPRESSION_NONE;
      payload = plaintext;
    }
    return framedParts(this.keys?.encryptionKey, kind, compression, payload);
  }

  /** decode, then the content re-hashed against `id`; `fail(reason)` is what is thrown when either fails (I7). */
  async decodeNamed(
    id: string,
    stored: Buffer,
    fail: (reason: string) => Error,
    limit: number,
  ): Promise<{ kind: Kind; plaintext: Buffer }> {
    let decoded: { kind: Kind; plaintext: Buffer };
    try {
      decoded = await this.decode(stored, limit);
    } catch (error) {
      if (error instanceof DecodeError) throw fail(error.message);
      throw error;
    }
    // Large blobs are re-hashed on the thread pool: the reader's main thread goes on parsing and writing the
    // blobs before (a physical restore's extraction was bound by this hash on one core).
    const actual =
      decoded.plaintext.length >= OFF_THREAD_ID_BYTES
        ? await this.idOfOffThread(decoded.plaintext)
        : this.idOf(decoded.plaintext);
    if (actual !== id) throw fail('content does not match its id');
    return decoded;
  }

  /**
   * Authenticates (when encrypted) and decompresses to at most `limit` bytes; throws DecodeError saying what
   * is wrong.
   */
  decode(stored: Buffer, limit: number): Promise<{ kind: Kind; plaintext: Buffer }> {
    return decodeStored(this.keys?.encryptionKey, stored, limit);
  }

  /** What a worker thread of this process needs to decode blobs with decodeStored (no key when unencrypted). */
  get decodingKey(): Buffer | undefined {
    return this.keys?.encryptionKey;
  }

  /** What a worker thread needs to name and encode blobs as this codec does (contentId, framedParts). */
  get encodingKeys(): { encryptionKey: Buffer; macKey: Buffer } | undefined {
    return this.keys && { encryptionKey: this.keys.encryptionKey, macKey: this.keys.macKey };
  }
}

/** A payload framed by its header and sealed when encrypted: the pieces of a stored blob (§4), for Codec and workers. */
export function framedParts(
  encryptionKey: Buffer | undefined,
  kind: Kind,
  compression: CompressionCode,
  payload: Buffer,
): Buffer[] {
  const parts = [header(kind, compression), payload];
  return encryptionKey ? sealParts(encryptionKey, parts) : parts;
}

/** Codec.decode, for a worker thread that has the repository's encryption key (Codec.decodingKey). */
export async function decodeStored(
  encryptionKey: Buffer | undefined,
  stored: Buffer,
  limit: number,
): Promise<{ kind: Kind; plaintext: Buffer }> {
  let framed = stored;
  if (encryptionKey) {
    const opened = unseal(encryptionKey, stored);
    if (!opened) throw new DecodeError('authentication failed');
    framed = opened;
  }
  if (framed.length < HEADER_BYTES) throw new DecodeError('truncated header');
  const kind = KIND_NAMES[framed[0]!];
  const compression = framed[1]!;
  if (kind === undefined) throw new DecodeError(`unknown kind ${framed[0]}`);
  if (compression > 1) throw new DecodeError(`unknown compression ${compression}`);
  try {
    return { kind, plaintext: await unpack(compression, framed.subarray(HEADER_BYTES), limit) };
  } catch (error) {
    if (error instanceof DecompressionLimitError) throw new DecodeError(`zstd payload ${error.message}`);
    throw new DecodeError('zstd payload does not decompress');
  }
}

/** The length of the bytes that `parts` concatenate to. */
export function lengthOf(parts: readonly Buffer[]): number {
  let length = 0;
  for (const part of parts) length += part.length;
  return length;
}

function header(kind: Kind, compression: CompressionCode): Buffer {
  return Buffer.from([KIND[kind], compression]);
}
