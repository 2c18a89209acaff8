import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readlink, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobNotFoundError, createBlobStore, FileBlobStore } from '../../src/blobstore/index.ts';
import { blobRangeContract, randomRanges } from './range-contract.ts';

async function tempDir(): Promise<string> {
  // Real, so that it compares with what /proc/self/fd links to.
  return realpath(await mkdtemp(path.join(os.tmpdir(), 'trendgen-blobstore-range-')));
}

blobRangeContract('file', async () => {
  const dir = await tempDir();
  const store = createBlobStore(pathToFileURL(path.join(dir, 'store')).href, {
    endpoint: undefined,
    region: 'us-east-1',
    forcePathStyle: true,
    accessKeyId: undefined,
    secretAccessKey: undefined,
  });
  return {
    store,
    dispose: async () => {
      await store.close?.();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

/** The files under `dir` this process holds open, by path (a removed one ends in " (deleted)"). */
async function openFilesUnder(dir: string): Promise<string[]> {
  const links = await Promise.all(
    (await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')),
  );
  return links.filter((link) => link.startsWith(`${dir}/`)).map((link) => path.relative(dir, link));
}

const PACKS = 12;

describe.skipIf(!existsSync('/proc/self/fd'))('FileBlobStore getRange descriptors', () => {
  let dir: string;
  let store: FileBlobStore;
  let packs: Buffer[];
  beforeEach(async () => {
    dir = await tempDir();
    store = new FileBlobStore(path.join(dir, 'store'));
    packs = Array.from({ length: PACKS }, (_, i) => randomBytes(50_000 + i));
    await Promise.all(packs.map((bytes, i) => store.put(`packs/p${i}`, bytes)));
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const expectRange = async (i: number, offset: number, length: number) => {
    const bytes = await store.getRange(`packs/p${i}`, offset, length);
    expect(bytes.equals(packs[i]!.subarray(offset, offset + length)), `p${i} ${offset}+${length}`).toBe(true);
  };

  it('reads of one pack, one after another or all at once, share one descriptor', async () => {
    for (const [offset, length] of randomRanges(packs[0]!.length, 50)) await expectRange(0, offset, length);
    expect(await openFilesUnder(dir)).toEqual(['store/packs/p0']);
    await Promise.all(
      randomRanges(packs[1]!.length, 200).map(([offset, length]) => expectRange(1, offset, length)),
    );
    expect((await openFilesUnder(dir)).sort()).toEqual(['store/packs/p0', 'store/packs/p1']);
  });

  it('keeps at most 8 descriptors, and reads of evicted packs are still right', async () => {
    for (let i = 0; i < PACKS; i++) await expectRange(i, 100, 1000);
    const open = await openFilesUnder(dir);
    expect(open.sort()).toEqual(Array.from({ length: 8 }, (_, i) => `store/packs/p${i + PACKS - 8}`).sort());
    for (let i = 0; i < PACKS; i++) await expectRange(i, 49_000, 1000);
    expect((await openFilesUnder(dir)).length).toBe(8);
  });

  it('reads of more packs than descriptors at once are all right: eviction waits for reads in flight', async () => {
    const reads = packs.flatMap((bytes, i) =>
      randomRanges(bytes.length, 40).map(([offset, length]) => ({ i, offset, length })),
    );
    for (let round = 0; round < 5; round++) {
      reads.sort(() => Math.random() - 0.5);
      await Promise.all(reads.map(({ i, offset, length }) => expectRange(i, offset, length)));
    }
    expect((await openFilesUnder(dir)).length).toBeLessThanOrEqual(8);
  });

  it('delete closes the descriptor, and the key is then not found', async () => {
    await expectRange(3, 0, 10);
    await store.delete('packs/p3');
    expect(await openFilesUnder(dir)).toEqual([]);
    await expect(store.getRange('packs/p3', 0, 10)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.getRange('packs/p3', 0, 0)).rejects.toBeInstanceOf(BlobNotFoundError);
  });

  it('a put that replaces a key is read, not the file the cached descriptor was opened on', async () => {
    await expectRange(4, 0, 1000);
    packs[4] = randomBytes(70_000);
    await store.put('packs/p4', packs[4]);
    await expectRange(4, 0, 1000);
    await expectRange(4, 60_000, 10_000);
    expect(await openFilesUnder(dir)).toEqual(['store/packs/p4']);
  });

  it('close closes every descriptor, and a later read opens again', async () => {
    for (let i = 0; i < 5; i++) await expectRange(i, 7, 70);
    await store.close();
    expect(await openFilesUnder(dir)).toEqual([]);
    await expectRange(2, 7, 70);
    expect(await openFilesUnder(dir)).toEqual(['store/packs/p2']);
  });

  it('a folder of keys, or a key under a blob, is not found and leaves nothing open', async () => {
    await expect(store.getRange('packs', 0, 1)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.getRange('packs', 0, 0)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.getRange('packs/p0/x', 0, 1)).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await openFilesUnder(dir)).toEqual([]);
  });

  it('a missing key becomes readable once another process wrote it: a failed open is not cached', async () => {
    await expect(store.getRange('packs/late', 0, 1)).rejects.toBeInstanceOf(BlobNotFoundError);
    const other = new FileBlobStore(path.join(dir, 'store'));
    await other.put('packs/late', Buffer.from('late'));
    expect((await store.getRange('packs/late', 1, 2)).toString()).toBe('at');
  });
});
