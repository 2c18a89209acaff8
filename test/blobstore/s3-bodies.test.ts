import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { BlobStoreError } from '../../src/blobstore/blobstore.ts';
import { readRange } from '../../src/blobstore/s3-bodies.ts';

const where = { key: 'packs/p', location: 's3://bucket/prefix', endpoint: 'https://s3.example' };
const object = randomBytes(10_000);
const SHORTER = /^The blob packs\/p in s3:\/\/bucket\/prefix is shorter than the range asked of it: /;

/** An answer of `body`, in chunks of 1000 bytes, with the headers a server would send. */
function answer(body: Buffer, headers: { ContentRange?: string; ContentLength?: number }) {
  const chunks = Array.from({ length: Math.ceil(body.length / 1000) }, (_, i) =>
    body.subarray(i * 1000, (i + 1) * 1000),
  );
  const stream = Readable.from(chunks);
  return { stream, out: { Body: stream, ...headers, $metadata: {} } as unknown as GetObjectCommandOutput };
}

describe('S3 ranged read bodies', () => {
  it('an answer of exactly the range is returned', async () => {
    const { out } = answer(object.subarray(2500, 4500), {
      ContentRange: 'bytes 2500-4499/10000',
      ContentLength: 2000,
    });
    expect((await readRange(out, where, 2500, 2000)).equals(object.subarray(2500, 4500))).toBe(true);
  });

  it('a server that ignores Range sends the whole object: the range is cut from it, the rest not read', async () => {
    const { out, stream } = answer(object, { ContentLength: object.length });
    expect((await readRange(out, where, 2500, 2000)).equals(object.subarray(2500, 4500))).toBe(true);
    expect(stream.destroyed).toBe(true);
    const again = answer(object, { ContentRange: 'bytes 0-9999/10000', ContentLength: 10_000 });
    expect((await readRange(again.out, where, 9999, 1)).equals(object.subarray(9999))).toBe(true);
  });

  it('an object that ends before the range is the sentence, whatever the body', async () => {
    for (const headers of [
      { ContentRange: 'bytes 9000-9999/10000', ContentLength: 1000 },
      { ContentRange: 'bytes 0-0/0', ContentLength: 1 },
      { ContentLength: 10_000 },
    ]) {
      const { out } = answer(object.subarray(9000), headers);
      await expect(readRange(out, where, 9000, 1001), JSON.stringify(headers)).rejects.toThrow(SHORTER);
    }
    // Nothing announced: the body's end is the object's end.
    const { out } = answer(object.subarray(9000), {});
    await expect(readRange(out, where, 9000, 1001)).rejects.toThrow(SHORTER);
  });

  it('a body cut before its announced end is a network failure, not a short blob', async () => {
    const { out } = answer(object.subarray(2000, 3000), {
      ContentRange: 'bytes 2000-3999/10000',
      ContentLength: 2000,
    });
    await expect(readRange(out, where, 2000, 2000)).rejects.toThrow(
      'Reading packs/p from s3://bucket/prefix was cut short after 1000 of 2000 bytes: check the network to https://s3.example.',
    );
  });

  it('an answer that starts after the range asked is refused in one sentence', async () => {
    const { out } = answer(object.subarray(3000, 4000), {
      ContentRange: 'bytes 3000-3999/10000',
      ContentLength: 1000,
    });
    const error = await readRange(out, where, 2000, 2000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BlobStoreError);
    expect((error as Error).message).toBe(
      'The S3 endpoint https://s3.example answered a read of bytes 2000-3999 of packs/p in s3://bucket/prefix with bytes 3000-3999: it does not serve ranges as S3 does.',
    );
  });

  it("the body's own failure reaches the caller unchanged", async () => {
    const reset = Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
    const body = Readable.from(
      (function* () {
        yield object.subarray(0, 1000);
        throw reset;
      })(),
    );
    const out = { Body: body, ContentRange: 'bytes 0-1999/10000', ContentLength: 2000 };
    await expect(readRange(out as unknown as GetObjectCommandOutput, where, 0, 2000)).rejects.toBe(reset);
  });
});
