import { afterEach, describe, expect, it } from 'vitest';
import { storeObjectBytes } from '../../../src/vault/repository/index.ts';
import { digest, randomData, SMALL_CHUNKS, type TempRepo, tempRepo } from './helpers.ts';

let t: TempRepo;
afterEach(() => t?.remove());

/** The bytes as a stream of `size`-byte pieces, as an object store's read stream gives them. */
async function* pieces(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function plaintextOf(chunks: string[]): Promise<Buffer> {
  return Buffer.concat(await Promise.all(chunks.map((id) => t.repo.getBlob(id))));
}

describe('storeObjectBytes: objects named by their hash are not cut by content', () => {
  it('an object up to maxSize is one blob, from a buffer or from a stream, where a file would be several', async () => {
    t = await tempRepo({ encrypted: true });
    const object = randomData(SMALL_CHUNKS.maxSize);
    const asFile = await t.repo.storeFile(pieces(object, 4096));
    expect(asFile.chunks.length).toBeGreaterThan(1);
    const fromBuffer = await storeObjectBytes(t.repo, object);
    const fromStream = await storeObjectBytes(t.repo, pieces(object, 1000));
    expect(fromBuffer.chunks).toHaveLength(1);
    expect(fromStream.chunks).toEqual(fromBuffer.chunks);
    expect(fromStream).toMatchObject({ size: object.length, chunkSizes: [object.length], blobsAdded: 0 });
    expect(digest(await plaintextOf(fromBuffer.chunks))).toBe(digest(object));
  });

  it('a larger object is chunked as any file, with the same chunks from a buffer or a stream', async () => {
    t = await tempRepo();
    const object = randomData(3 * SMALL_CHUNKS.maxSize + 12_345);
    const asFile = await t.repo.storeFile(pieces(object, 65_536));
    const fromBuffer = await storeObjectBytes(t.repo, object);
    const fromStream = await storeObjectBytes(t.repo, pieces(object, 1000));
    expect(fromBuffer.chunks).toEqual(asFile.chunks);
    expect(fromStream.chunks).toEqual(asFile.chunks);
    expect(fromStream.size).toBe(object.length);
    expect(digest(await plaintextOf(fromStream.chunks))).toBe(digest(object));
  });

  it('an empty object has no chunks; a stream that fails midway rejects with its error', async () => {
    t = await tempRepo();
    expect(await storeObjectBytes(t.repo, Buffer.alloc(0))).toMatchObject({ chunks: [], size: 0 });
    expect(await storeObjectBytes(t.repo, pieces(Buffer.alloc(0), 10))).toMatchObject({
      chunks: [],
      size: 0,
    });
    async function* failing(): AsyncGenerator<Buffer> {
      yield randomData(1000);
      throw new Error('the object store went away');
    }
    await expect(storeObjectBytes(t.repo, failing())).rejects.toThrow('the object store went away');
  });
});
