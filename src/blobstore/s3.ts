import { Readable } from 'node:stream';
import type {
  GetObjectCommandOutput,
  ListObjectsV2CommandOutput,
  S3Client,
  S3ClientConfig,
} from '@aws-sdk/client-s3';
import type { S3Settings } from '../config/config.ts';
import {
  assertValidKey,
  assertValidRange,
  type BlobInfo,
  BlobNotFoundError,
  type BlobStore,
  BlobStoreError,
  checkBodySize,
  discardBody,
  type PutOptions,
  rangeBeyondEnd,
} from './blobstore.ts';
import { countBytes, RangeCutShortError, rangeHeader, readRange } from './s3-bodies.ts';
import {
  describeEndpoint,
  describeS3Error,
  isNotFound,
  isPreconditionFailed,
  isRangeNotSatisfiable,
  type SdkError,
} from './s3-errors.ts';
import { loadS3Sdk, type S3Sdk, s3ClientConfig } from './s3-sdk.ts';

export interface S3BlobStoreOptions {
  bucket: string;
  /** Folder inside the bucket; empty for the whole bucket. */
  prefix?: string;
  settings: S3Settings;
  /** Attempts per request, retries included (standard mode: 5xx, throttling, network errors). */
  maxAttempts?: number;
  /**
   * A connection on which nothing at all moves for this long is given up (and retried): a stalled endpoint
   * fails a backup within minutes, not 300 s per attempt. Bytes flowing either way keep it alive.
   */
  idleTimeoutMs?: number;
}

const IDLE_TIMEOUT_MS = 60_000;

const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 4;
/**
 * Blobs as objects in one bucket under a prefix. A put resolves only once S3 acknowledged the object;
 * a failed or truncated body never completes an upload, so nothing partial becomes visible (I1).
 */
export class S3BlobStore implements BlobStore {
  readonly location: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly configuredBy: string | undefined;
  private readonly endpoint: string;
  private readonly clientConfig: S3ClientConfig;
  private connecting: Promise<S3Sdk & { client: S3Client }> | undefined;
  private readonly maxAttempts: number;
  private readonly caFile: string | undefined;

  constructor(options: S3BlobStoreOptions) {
    const { settings } = options;
    this.bucket = options.bucket;
    const trimmed = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.prefix = trimmed ? `${trimmed}/` : '';
    this.location = `s3://${this.bucket}${trimmed ? `/${trimmed}` : ''}`;
    this.configuredBy = settings.configuredBy;
    this.endpoint = describeEndpoint(settings);
    this.maxAttempts = options.maxAttempts ?? 5;
    this.caFile = settings.caFile;
    this.clientConfig = s3ClientConfig(settings, {
      maxAttempts: this.maxAttempts,
      idleTimeoutMs: options.idleTimeoutMs ?? IDLE_TIMEOUT_MS,
    });
  }

  /** The SDK and this store's client, made on first use (loadS3Sdk says why). */
  private sdk(): Promise<S3Sdk & { client: S3Client }> {
    this.connecting ??= loadS3Sdk().then((sdk) => ({
      ...sdk,
      client: new sdk.s3.S3Client(this.clientConfig),
    }));
    return this.connecting;
  }

  async put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<void> {
    await this.write(key, body, options, false);
  }

  /**
   * Sends `If-None-Match: *` for servers that honour it, after a HEAD for those that ignore it (s3rver):
   * there a concurrent writer of the same key may still win, which content-addressed keys tolerate.
   */
  async putIfAbsent(key: string, body: Readable | Buffer, options?: PutOptions): Promise<boolean> {
    if (await this.head(key)) {
      await discardBody(body);
      return false;
    }
    try {
      await this.write(key, body, options, true);
      return true;
    } catch (error) {
      if (error instanceof BlobStoreError && isPreconditionFailed(error.cause)) return false;
      throw error;
    }
  }

  /**
   * The blob's bytes. A body cut short (the connection dropped before the promised length) is resumed with
   * a ranged GET of the same ETag; it never ends early as if complete, and when it cannot be finished the
   * stream fails with one BlobStoreError sentence.
   */
  async get(key: string): Promise<Readable> {
    const Key = this.objectKey(key);
    const { client, s3 } = await this.sdk();
    try {
      const out = await client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key }));
      return Readable.from(this.resumable(key, Key, out), { objectMode: false });
    } catch (error) {
      if (isNotFound(error)) throw new BlobNotFoundError(key, this.location);
      throw this.fail(error, key);
    }
  }

  private async *resumable(key: string, Key: string, first: GetObjectCommandOutput): AsyncGenerator<Buffer> {
    const total = first.ContentLength;
    let body = first.Body as Readable;
    let received = 0;
    let skip = 0;
    try {
      for (let attempt = 1; ; attempt++) {
        let cause: unknown;
        try {
          for await (const chunk of body as AsyncIterable<Buffer>) {
            const part = skip ? chunk.subarray(Math.min(skip, chunk.length)) : chunk;
            skip -= chunk.length - part.length;
            received += part.length;
            if (part.length) yield part;
          }
        } catch (error) {
          cause = error;
        }
        if (total === undefined ? cause === undefined : received === total) return;
        if (total !== undefined && received > total) {
          throw new BlobStoreError(
            `Reading ${key} from ${this.location} gave ${received} bytes instead of the ${total} announced: read it again.`,
          );
        }
        const why = cause ? `${(cause as SdkError).code ?? (cause as Error).message}` : 'early end';
        if (attempt >= this.maxAttempts || total === undefined) {
          throw new BlobStoreError(
            `Reading ${key} from ${this.location} was cut short after ${received} of ${total ?? 'unknown'} bytes ${attempt} time(s) (${why}): check the network to ${this.endpoint}.`,
            { cause },
          );
        }
        body.destroy();
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** attempt)));
        let next: GetObjectCommandOutput;
        const { client, s3 } = await this.sdk();
        try {
          next = await client.send(
            new s3.GetObjectCommand({
              Bucket: this.bucket,
              Key,
              Range: `bytes=${received}-`,
              ...(first.ETag ? { IfMatch: first.ETag } : {}),
            }),
          );
        } catch (error) {
          if (isNotFound(error) || isPreconditionFailed(error)) throw this.changed(key, error);
          throw this.fail(error, key);
        }
        body = next.Body as Readable;
        if (first.ETag && next.ETag && next.ETag !== first.ETag) throw this.changed(key);
        // A server that ignores Range sends the whole object again: drop what was already passed on.
        skip = next.ContentRange ? 0 : received;
      }
    } finally {
      body.destroy();
    }
  }

  private changed(key: string, cause?: unknown): BlobStoreError {
    return new BlobStoreError(
      `${key} in ${this.location} was replaced or removed while it was being read: read it again.`,
      { cause },
    );
  }

  /** One ranged GET (a HEAD for an empty range), asked again when its body is cut short. */
  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    const Key = this.objectKey(key);
    assertValidRange(offset, length);
    // A Range cannot ask for no bytes, and S3 answers an invalid one with the whole object.
    if (length === 0) {
      if (await this.head(key)) return Buffer.alloc(0);
      throw new BlobNotFoundError(key, this.location);
    }
    const Range = rangeHeader(offset, length);
    const where = { key, location: this.location, endpoint: this.endpoint };
    const { client, s3 } = await this.sdk();
    for (let attempt = 1; ; attempt++) {
      let out: GetObjectCommandOutput | undefined;
      try {
        out = await client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key, Range }));
        return await readRange(out, where, offset, length);
      } catch (error) {
        if (isNotFound(error)) throw new BlobNotFoundError(key, this.location);
        if (isRangeNotSatisfiable(error)) throw rangeBeyondEnd(key, this.location, offset, length);
        // A body that broke off is asked for again, as `get` resumes; the SDK retried what failed before it.
        const broken = out && (error instanceof RangeCutShortError || !(error instanceof BlobStoreError));
        if (!broken || attempt >= this.maxAttempts) throw this.fail(error, key);
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
  }

  async head(key: string): Promise<BlobInfo | undefined> {
    const Key = this.objectKey(key);
    const { client, s3 } = await this.sdk();
    try {
      const out = await client.send(new s3.HeadObjectCommand({ Bucket: this.bucket, Key }));
      return { key, size: out.ContentLength ?? 0, lastModified: out.LastModified };
    } catch (error) {
      // A HEAD answer has no body, so a missing bucket looks like a missing key here too.
      if (isNotFound(error)) return undefined;
      throw this.fail(error, key);
    }
  }

  async *list(prefix = ''): AsyncIterable<BlobInfo> {
    let token: string | undefined;
    const { client, s3 } = await this.sdk();
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await client.send(
          new s3.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ContinuationToken: token,
          }),
        );
      } catch (error) {
        throw this.fail(error, `${prefix}*`);
      }
      for (const object of page.Contents ?? []) {
        if (!object.Key) continue;
        yield {
          key: object.Key.slice(this.prefix.length),
          size: object.Size ?? 0,
          lastModified: object.LastModified,
        };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    const { client, s3 } = await this.sdk();
    try {
      await client.send(new s3.DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (error) {
      if (!isNotFound(error)) throw this.fail(error, key);
    }
  }

  async close(): Promise<void> {
    if (this.connecting) (await this.connecting).client.destroy();
  }

  private objectKey(key: string): string {
    assertValidKey(key);
    return this.prefix + key;
  }

  private async write(
    key: string,
    body: Readable | Buffer,
    options: PutOptions | undefined,
    onlyIfAbsent: boolean,
  ): Promise<void> {
    const params = {
      Bucket: this.bucket,
      Key: this.objectKey(key),
      ContentType: options?.contentType,
      ...(onlyIfAbsent ? { IfNoneMatch: '*' } : {}),
    };
    const { client, s3, Upload } = await this.sdk();
    if (Buffer.isBuffer(body)) {
      checkBodySize(key, body.length, options?.size);
      // Small buffers in one request; the SDK can retry it since the body is replayable.
      if (body.length < PART_SIZE) {
        try {
          await client.send(new s3.PutObjectCommand({ ...params, Body: body }));
        } catch (error) {
          throw this.fail(error, key);
        }
        return;
      }
    }
    let bodyError: unknown;
    let source: Readable | Buffer = body;
    if (!Buffer.isBuffer(body)) {
      body.once('error', (error) => (bodyError ??= error));
      source = options?.size === undefined ? body : countBytes(body, key, options.size);
    }
    // Upload buffers parts (retryable) and only completes after the body ended cleanly.
    const upload = new Upload({
      client,
      params: { ...params, Body: source },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (error) {
      // Stop the caller's producer as the file driver does; nothing more will be read.
      if (!Buffer.isBuffer(body)) body.destroy();
      // Upload may report its failed AbortMultipartUpload instead of the reason it aborted.
      if (bodyError !== undefined) throw bodyError;
      throw this.fail(error, key);
    }
  }

  /** Turns an SDK error into one plain sentence that says what to check; never includes secrets. */
  private fail(error: unknown, key: string): Error {
    return describeS3Error(error, key, {
      configuredBy: this.configuredBy,
      endpoint: this.endpoint,
      bucket: this.bucket,
      location: this.location,
      caFile: this.caFile,
    });
  }
}
