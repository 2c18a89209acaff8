import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';

export interface BlobInfo {
  key: string;
  size: number;
  lastModified?: Date;
}

export interface PutOptions {
  /**
   * Known length of the body, when the caller has it. A body of any other length is refused with
   * BlobStoreError and nothing is stored, so a truncated upload never becomes a blob.
   */
  size?: number;
  contentType?: string;
  /**
   * false: the bytes may stay in the page cache until `flush()`. Only for writers that keep what they write
   * unreachable until then (a restore's marks) and re-verify by hash whatever they find after a crash.
   * 'contents': the bytes are durable when the put resolves, the file's name only after `syncEntries()`: for
   * writers that name the file nowhere until then (a pack, before its index), so a lost name loses nothing.
   */
  durable?: boolean | 'contents';
}

/**
 * The one storage contract used by the object store and by the vault's targets.
 * Keys are relative paths of `[A-Za-z0-9._-]` segments joined by `/`; nothing can escape the store.
 * Durability: when put/putIfAbsent resolve, the bytes are durable (fsynced with their directory, or
 * acknowledged by S3), and readers never see a partial blob.
 */
export interface BlobStore {
  /** A URL-like description for messages, without credentials. */
  readonly location: string;
  put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<void>;
  /**
   * Writes only when the key does not exist; resolves true when this call wrote it. Atomic on the file
   * driver and on S3 servers that honour `If-None-Match: *`; on servers that ignore it, a concurrent
   * writer of the same key may win, which is harmless for content-addressed keys.
   */
  putIfAbsent(key: string, body: Readable | Buffer, options?: PutOptions): Promise<boolean>;
  /** Rejects with BlobNotFoundError when missing. */
  get(key: string): Promise<Readable>;
  /** The same bytes whole, where the store has a cheaper way than a stream (see getBytes). */
  getBytes?(key: string): Promise<Buffer>;
  /** The bytes whole when the blob holds at most `maxBytes`; undefined (nothing read) when it holds more. */
  getIfSmall?(key: string, maxBytes: number): Promise<Buffer | undefined>;
  /** The local file that holds a key's bytes, for a batch job's blocking reads; only stores on a file system have one. */
  localPath?(key: string): string;
  /**
   * The `length` bytes at `offset`, for many blobs packed in one immutable blob. Rejects with
   * BlobNotFoundError when missing, with `rangeBeyondEnd`'s BlobStoreError when the blob ends before
   * `offset + length` (never a short buffer), and with RangeError unless both are non-negative safe
   * integers. A length of 0 still confirms that the blob exists.
   */
  getRange(key: string, offset: number, length: number): Promise<Buffer>;
  head(key: string): Promise<BlobInfo | undefined>;
  /** Every blob whose key starts with `prefix`, in key order. */
  list(prefix?: string): AsyncIterable<BlobInfo>;
  /** Removing a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** Makes every write made with `durable: false` durable; absent where every write is durable anyway (S3). */
  flush?(): Promise<void>;
  /**
   * Makes durable the directory entries of writes made with `durable: 'contents'` (their bytes were at once);
   * absent where every write is durable anyway (S3).
   */
  syncEntries?(): Promise<void>;
  close?(): Promise<void>;
}

export class BlobStoreError extends Error {
  override name = 'BlobStoreError';
}

export class BlobNotFoundError extends BlobStoreError {
  override name = 'BlobNotFoundError';
  constructor(
    readonly key: string,
    location: string,
  ) {
    super(`The blob ${key} does not exist in ${location}.`);
  }
}

export class InvalidKeyError extends BlobStoreError {
  override name = 'InvalidKeyError';
}

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/** Refuses keys that are empty, absolute, contain `..`, hidden segments, or unusual characters. */
export function assertValidKey(key: string): void {
  if (key.length === 0 || key.length > 1024)
    throw new InvalidKeyError(`Invalid blob key: length ${key.length}.`);
  for (const segment of key.split('/')) {
    if (!SEGMENT.test(segment) || segment === '..' || segment === '.') {
      throw new InvalidKeyError(
        `Invalid blob key ${JSON.stringify(key)}: segments are [A-Za-z0-9._-] and cannot start with a dot.`,
      );
    }
  }
}

/** Whether assertValidKey accepts the key; a folder's entries that are not keys are not blobs. */
export function isValidKey(key: string): boolean {
  try {
    assertValidKey(key);
    return true;
  } catch {
    return false;
  }
}

/** Refuses a body whose length differs from the one the caller declared: a truncated upload is not stored. */
export function checkBodySize(key: string, actual: number, declared: number | undefined): void {
  if (declared !== undefined && actual !== declared) {
    throw new BlobStoreError(
      `The body for ${key} had ${actual} bytes instead of the declared ${declared}: nothing was stored.`,
    );
  }
}

/** Refuses a range that no blob can satisfy, before any I/O. */
export function assertValidRange(offset: number, length: number): void {
  for (const [name, value] of [
    ['offset', offset],
    ['length', length],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`The ${name} of a blob range must be a non-negative safe integer, not ${value}.`);
    }
  }
  // S3 names the range by its last byte, which must be exact too.
  if (!Number.isSafeInteger(offset + length)) {
    throw new RangeError(`The blob range of ${length} bytes at offset ${offset} ends past 2^53.`);
  }
}

/** The blob ends before the range asked of it: a pack whose index points past its end. */
/** A ranged read past a blob's end: the blob is shorter than whoever asked believes (a cut-short pack). */
export class RangeBeyondEndError extends BlobStoreError {
  override name = 'RangeBeyondEndError';
}

export function rangeBeyondEnd(
  key: string,
  location: string,
  offset: number,
  length: number,
): BlobStoreError {
  return new RangeBeyondEndError(
    `The blob ${key} in ${location} is shorter than the range asked of it: ${length} bytes at offset ${offset}.`,
  );
}

/**
 * Reads a body that will not be stored (the key already exists) to its end, so that the caller's
 * pipeline (a hash, an upload) finishes normally instead of stalling.
 */
export async function discardBody(body: Readable | Buffer): Promise<void> {
  if (Buffer.isBuffer(body)) return;
  body.resume();
  await finished(body);
}

/** A blob whole: the store's own way when it has one, else its stream read to the end. */
export async function getBytes(store: BlobStore, key: string): Promise<Buffer> {
  return store.getBytes ? await store.getBytes(key) : await readAll(await store.get(key));
}

/** Reads a (small) stream, or any iterable of its pieces, into one buffer. */
export async function readAll(stream: AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream)
    parts.push(typeof part === 'string' ? Buffer.from(part) : (part as Buffer));
  return Buffer.concat(parts);
}
