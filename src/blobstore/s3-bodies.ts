import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { BlobStoreError, checkBodySize, rangeBeyondEnd } from './blobstore.ts';

/** How the S3 driver checks the bodies it sends and receives: an upload's length, a ranged read's bytes. */

/** Passes a stream through, failing it at the end if its length differs from the declared one. */
export function countBytes(body: Readable, key: string, declared: number): Readable {
  let count = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      count += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      try {
        checkBodySize(key, count, declared);
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
  });
  pipeline(body, counter).catch(() => {
    // The same error reaches the Upload through `counter`.
  });
  return counter;
}

/** A ranged read whose connection ended before the bytes it promised: worth asking again. */
export class RangeCutShortError extends BlobStoreError {
  override name = 'RangeCutShortError';
}

/** The Range header for `length` (at least 1) bytes at `offset`: HTTP names the last byte, not the length. */
export function rangeHeader(offset: number, length: number): string {
  return `bytes=${offset}-${offset + length - 1}`;
}

/**
 * The `length` bytes at `offset` from the answer to a ranged GET, never fewer. A server may answer with more
 * than the range (the whole object, when it ignores Range): the range is cut from it, and the rest not read.
 */
export async function readRange(
  out: GetObjectCommandOutput,
  where: { key: string; location: string; endpoint: string },
  offset: number,
  length: number,
): Promise<Buffer> {
  const body = out.Body as Readable | undefined;
  const wanted = offset + length;
  try {
    const { start, end, total } = answerSpan(out);
    // What the server announces tells a blob that ends early from a connection cut before the end.
    if ((total ?? end ?? wanted) < wanted) throw rangeBeyondEnd(where.key, where.location, offset, length);
    if (start > offset || (end ?? wanted) < wanted) {
      throw new BlobStoreError(
        `The S3 endpoint ${where.endpoint} answered a read of bytes ${offset}-${wanted - 1} of ${where.key} in ${where.location} with bytes ${start}-${(end ?? 0) - 1}: it does not serve ranges as S3 does.`,
      );
    }
    const bytes = body ? await readSpan(body, offset - start, length) : Buffer.alloc(0);
    if (bytes.length === length) return bytes;
    if (end === undefined) throw rangeBeyondEnd(where.key, where.location, offset, length);
    throw new RangeCutShortError(
      `Reading ${where.key} from ${where.location} was cut short after ${bytes.length} of ${length} bytes: check the network to ${where.endpoint}.`,
    );
  } finally {
    body?.destroy();
  }
}

/** `length` bytes of `body` after its first `skip`; fewer when it ends before. */
async function readSpan(body: Readable, skip: number, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let seen = 0;
  let kept = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    const from = Math.max(0, skip - seen);
    seen += chunk.length;
    if (from >= chunk.length) continue;
    const part = chunk.subarray(from, from + length - kept);
    parts.push(part);
    kept += part.length;
    if (kept === length) break;
  }
  return Buffer.concat(parts, kept);
}

/** Which bytes of the object an answer holds, from `start` to before `end`, and the object's size. */
function answerSpan(out: GetObjectCommandOutput): { start: number; end?: number; total?: number } {
  const range = out.ContentRange ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(out.ContentRange) : null;
  if (!range) return { start: 0, end: out.ContentLength, total: out.ContentLength };
  const total = range[3] === '*' ? undefined : Number(range[3]);
  return { start: Number(range[1]), end: Number(range[2]) + 1, total };
}
