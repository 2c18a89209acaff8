import { randomBytes, randomInt } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BlobNotFoundError,
  type BlobStore,
  BlobStoreError,
  InvalidKeyError,
} from '../../src/blobstore/blobstore.ts';
import { type ContractSubject, INVALID_KEYS } from './contract.ts';

const SIZE = 300_000;

/** `count` ranges of a blob of `size` bytes, of every length from 1 byte to the whole blob. */
export function randomRanges(size: number, count: number): Array<[offset: number, length: number]> {
  return Array.from({ length: count }, () => {
    const offset = randomInt(size);
    const longest = size - offset;
    const length = 1 + randomInt(randomInt(2) ? Math.min(longest, 4096) : longest);
    return [offset, length];
  });
}

function shorter(store: BlobStore, key: string, offset: number, length: number): string {
  return `The blob ${key} in ${store.location} is shorter than the range asked of it: ${length} bytes at offset ${offset}.`;
}

/** getRange, for the pack files that hold many blobs each: every driver reads the same bytes. */
export function blobRangeContract(name: string, open: () => Promise<ContractSubject>): void {
  describe(`${name} BlobStore getRange`, () => {
    let subject: ContractSubject;
    let store: BlobStore;
    let pack: Buffer;
    beforeEach(async () => {
      subject = await open();
      store = subject.store;
      pack = randomBytes(SIZE);
      await store.put('packs/p1', pack);
    });
    afterEach(async () => {
      await subject.dispose();
    });

    it('ranges at the start, in the middle and at the end are the bytes put there', async () => {
      for (const [offset, length] of [
        [0, 1],
        [0, 4096],
        [1, 1],
        [123_457, 65_536],
        [SIZE / 2, 1],
        [SIZE - 4096, 4096],
        [SIZE - 1, 1],
        [0, SIZE],
      ] as const) {
        const bytes = await store.getRange('packs/p1', offset, length);
        expect(bytes.length, `${offset}+${length}`).toBe(length);
        expect(bytes.equals(pack.subarray(offset, offset + length)), `${offset}+${length}`).toBe(true);
      }
    });

    it('a range past the end is refused in one sentence, never answered short', async () => {
      for (const [offset, length] of [
        [SIZE - 10, 11],
        [0, SIZE + 1],
        [SIZE, 1],
        [SIZE + 1000, 20],
        [SIZE - 1, Number.MAX_SAFE_INTEGER - SIZE],
      ] as const) {
        const error = await store.getRange('packs/p1', offset, length).catch((e: unknown) => e);
        expect(error, `${offset}+${length}`).toBeInstanceOf(BlobStoreError);
        expect(error, `${offset}+${length}`).not.toBeInstanceOf(BlobNotFoundError);
        expect((error as Error).message).toBe(shorter(store, 'packs/p1', offset, length));
      }
      await store.put('packs/empty', Buffer.alloc(0));
      await expect(store.getRange('packs/empty', 0, 1)).rejects.toThrow(shorter(store, 'packs/empty', 0, 1));
    });

    it('a missing key is BlobNotFoundError naming the key, for any length', async () => {
      for (const length of [1, 0]) {
        const error = await store.getRange('packs/missing', 0, length).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(BlobNotFoundError);
        expect((error as BlobNotFoundError).key).toBe('packs/missing');
      }
      await store.delete('packs/p1');
      await expect(store.getRange('packs/p1', 0, 1)).rejects.toBeInstanceOf(BlobNotFoundError);
    });

    it('a length of 0 is an empty buffer once the blob is known to exist', async () => {
      for (const offset of [0, 5, SIZE, SIZE + 5]) {
        expect((await store.getRange('packs/p1', offset, 0)).length).toBe(0);
      }
      await store.put('packs/empty', Buffer.alloc(0));
      expect((await store.getRange('packs/empty', 0, 0)).length).toBe(0);
    });

    it('200 ranges of one blob read at once are each the bytes put there', async () => {
      const ranges = randomRanges(SIZE, 200);
      const results = await Promise.all(
        ranges.map(([offset, length]) => store.getRange('packs/p1', offset, length)),
      );
      ranges.forEach(([offset, length], i) => {
        expect(results[i]!.equals(pack.subarray(offset, offset + length)), `${offset}+${length}`).toBe(true);
      });
    });

    it('offsets and lengths that are not non-negative safe integers are a RangeError; invalid keys too', async () => {
      for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
        await expect(store.getRange('packs/p1', bad, 1), `offset ${bad}`).rejects.toBeInstanceOf(RangeError);
        await expect(store.getRange('packs/p1', 0, bad), `length ${bad}`).rejects.toBeInstanceOf(RangeError);
      }
      await expect(store.getRange('packs/p1', Number.MAX_SAFE_INTEGER, 1)).rejects.toBeInstanceOf(RangeError);
      for (const key of INVALID_KEYS) {
        await expect(store.getRange(key, 0, 1), key).rejects.toBeInstanceOf(InvalidKeyError);
      }
    });
  });
}
