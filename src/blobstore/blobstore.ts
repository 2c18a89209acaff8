import type { Readable } from 'node:stream';

export interface BlobInfo {
  key: string;
  size: number;
  lastModified?: Date;
}

export interface PutOptions {
  /** Known length of the body, when the caller has it (lets S3 skip multipart for small bodies). */
  size?: number;
  contentType?: string;
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
  head(key: string): Promise<BlobInfo | undefined>;
  /** Every blob whose key starts with `prefix`, in key order. */
  list(prefix?: string): AsyncIterable<BlobInfo>;
  /** Removing a missing key is not an error. */
  delete(key: string): Promise<void>;
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
