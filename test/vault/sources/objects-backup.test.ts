import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { backupObjects } from '../../../src/vault/sources/objects.ts';
import { restoreObjects } from '../../../src/vault/sources/objects-restore.ts';
import { ObjectSealThread } from '../../../src/vault/sources/objects-seal-thread.ts';
import { SMALL_CHUNKS, type TempRepo, tempRepo } from '../repository/helpers.ts';

const keyOf = (bytes: Buffer) => `generated/${createHash('sha256').update(bytes).digest('hex')}.jpg`;

describe('backing up objects from a local store: small ones read whole, large ones streamed, damage never stored', () => {
  let temp: TempRepo | undefined;
  afterEach(() => temp?.remove());

  it('every good object restores byte for byte; a damaged one, small or large, is left out and named', async () => {
    temp = await tempRepo();
    const source = new FileBlobStore(path.join(temp.work, 'source'));
    // Past the 8 MiB that is read whole: these two are streamed.
    const small = randomBytes(30_000);
    const large = randomBytes(9 * 1024 * 1024);
    const smallDamaged = randomBytes(40_000);
    const largeDamaged = randomBytes(9 * 1024 * 1024 + 17);
    for (const bytes of [small, large, smallDamaged, largeDamaged]) await source.put(keyOf(bytes), bytes);
    for (const bytes of [smallDamaged, largeDamaged]) {
      const file = source.localPath(keyOf(bytes));
      const rotten = readFileSync(file);
      rotten[rotten.length >> 1]! ^= 0x40;
      writeFileSync(file, rotten);
    }

    const keys = [small, large, smallDamaged, largeDamaged].map(keyOf);
    const sealedOnThread = vi.spyOn(temp.repo, 'putStored');
    const { treeId, stats } = await backupObjects(temp.repo, source, keys);
    expect(stats.damaged.sort()).toEqual([keyOf(smallDamaged), keyOf(largeDamaged)].sort());
    expect(stats.read).toBe(2);
    // The small good one was sealed on the worker thread; the damaged small one went back to the main thread.
    expect(sealedOnThread).toHaveBeenCalledTimes(1);
    await temp.repo.flushBlobs();

    const target = new FileBlobStore(path.join(temp.work, 'restored'));
    const restored = await restoreObjects(temp.repo, treeId, target);
    expect(restored).toMatchObject({ written: 2, damaged: [] });
    for (const bytes of [small, large]) {
      expect(readFileSync(target.localPath(keyOf(bytes))).equals(bytes)).toBe(true);
    }
    expect(await target.head(keyOf(largeDamaged))).toBeUndefined();
  });

  it('many small images at once go to the seal thread, large ones up to 16 MB, and the main thread reads at most eight itself', async () => {
    // Blobs up to 2 MiB, so images of 1 MiB are sealed whole on the thread.
    temp = await tempRepo({ encrypted: true, chunker: { ...SMALL_CHUNKS, maxSize: 2 * 1024 * 1024 } });
    temp.repo.packBlobs();
    const source = new FileBlobStore(path.join(temp.work, 'source'));
    const images = Array.from({ length: 40 }, (_, i) => randomBytes(10_000 + i * 500));
    const others = Array.from({ length: 40 }, (_, i) => randomBytes(10_000 + i * 500));
    const otherKey = (bytes: Buffer) => keyOf(bytes).replace(/\.jpg$/, '.bin');
    for (const bytes of images) await source.put(keyOf(bytes), bytes);
    for (const bytes of others) await source.put(otherKey(bytes), bytes);
    const most = { sealing: 0, onMain: 0 };
    const now = { sealing: 0, onMain: 0 };
    const counted =
      <A extends unknown[], R>(kind: 'sealing' | 'onMain', run: (...args: A) => Promise<R>) =>
      async (...args: A): Promise<R> => {
        most[kind] = Math.max(most[kind], ++now[kind]);
        try {
          return await run(...args);
        } finally {
          now[kind]--;
        }
      };
    // What the thread holds: objects past the thread's own limit wait before `seal`.
    type Sealing = { seal: (key: string, sha256: string) => ReturnType<ObjectSealThread['store']> };
    const sealing = ObjectSealThread.prototype as unknown as Sealing;
    const seal = sealing.seal;
    const countSealing = () =>
      vi.spyOn(sealing, 'seal').mockImplementation(function (this: Sealing, key, sha256) {
        return counted('sealing', seal.bind(this))(key, sha256);
      });
    countSealing();
    // Only the main thread's objects are put as blobs; a tick each keeps them in hand long enough to be counted.
    const putBlob = temp.repo.putBlob.bind(temp.repo);
    vi.spyOn(temp.repo, 'putBlob').mockImplementation(
      counted('onMain', async (...args: Parameters<typeof putBlob>) => {
        await new Promise((resolve) => setTimeout(resolve, 2));
        return await putBlob(...args);
      }),
    );
    const keys = [...images.map(keyOf), ...others.map(otherKey)].sort();
    const { stats } = await backupObjects(temp.repo, source, keys);
    vi.restoreAllMocks();
    expect(stats).toMatchObject({ read: 80, damaged: [] });
    expect(most.sealing).toBeGreaterThan(8);
    expect(most.onMain).toBeGreaterThan(1);
    expect(most.onMain).toBeLessThanOrEqual(8);

    // Images of 1 MB: at most 16 MB of them in the thread's hands (each comes back as one sealed copy).
    const large = Array.from({ length: 40 }, () => randomBytes(1024 * 1024));
    for (const bytes of large) await source.put(keyOf(bytes), bytes);
    most.sealing = 0;
    countSealing();
    const big = await backupObjects(temp.repo, source, large.map(keyOf));
    vi.restoreAllMocks();
    expect(big.stats).toMatchObject({ read: 40, damaged: [] });
    expect(most.sealing).toBeGreaterThan(8);
    expect(most.sealing).toBeLessThanOrEqual(16);
  });

  it('objects sealed on the worker thread are the blobs the main thread makes, and restore from an encrypted pack', async () => {
    temp = await tempRepo({ encrypted: true });
    temp.repo.packBlobs();
    const source = new FileBlobStore(path.join(temp.work, 'source'));
    const images = Array.from({ length: 12 }, (_, i) => randomBytes(10_000 + i * 7_000));
    for (const bytes of images) await source.put(keyOf(bytes), bytes);
    const keys = images.map(keyOf);
    const sealedOnThread = vi.spyOn(temp.repo, 'putStored');
    const onThread = await backupObjects(temp.repo, source, keys);
    expect(sealedOnThread).toHaveBeenCalledTimes(images.length);
    expect(onThread.stats).toMatchObject({ read: images.length, blobsAdded: images.length, damaged: [] });
    await temp.repo.flushBlobs();

    // The same objects read again on the main thread name the same blobs: nothing new is stored.
    sealedOnThread.mockClear();
    const onMain = await backupObjects(temp.repo, source, keys, { sealThread: false });
    expect(sealedOnThread).not.toHaveBeenCalled();
    expect(onMain.stats).toMatchObject({ read: images.length, blobsAdded: 0 });
    expect(onMain.treeId).toBe(onThread.treeId);

    const target = new FileBlobStore(path.join(temp.work, 'restored'));
    expect(await restoreObjects(temp.repo, onThread.treeId, target)).toMatchObject({
      written: 12,
      damaged: [],
    });
    for (const bytes of images) expect(readFileSync(target.localPath(keyOf(bytes))).equals(bytes)).toBe(true);
  });
});
