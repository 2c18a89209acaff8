import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FileBlobStore } from '../../src/blobstore/index.ts';
import { tempDir } from '../support/temp.ts';

/** Every directory fsync, in order; `gate` holds the next one back, `failNext` makes the next one fail. */
const dirSyncs = vi.hoisted(() => ({
  synced: [] as string[],
  gate: undefined as Promise<void> | undefined,
  failNext: false,
}));

vi.mock('../../src/lib/files.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/lib/files.ts')>();
  return {
    ...real,
    fsyncDir: async (dir: string) => {
      if (dirSyncs.failNext) {
        dirSyncs.failNext = false;
        throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      }
      const gate = dirSyncs.gate;
      dirSyncs.gate = undefined;
      await gate;
      await real.fsyncDir(dir);
      dirSyncs.synced.push(dir);
    },
  };
});

describe("FileBlobStore: durable: 'contents' defers each directory's fsync to syncEntries", () => {
  let temp: ReturnType<typeof tempDir> | undefined;
  afterEach(() => {
    temp?.remove();
    dirSyncs.synced.length = 0;
  });

  async function storeWithFolders() {
    temp = tempDir('file-entries');
    const store = new FileBlobStore(path.join(temp.dir, 'store'));
    // Folders made (and their entries synced) first, so that what follows counts only the puts' own syncs.
    await store.put('a/seed', Buffer.from('seed'));
    await store.put('b/seed', Buffer.from('seed'));
    dirSyncs.synced.length = 0;
    return { store, a: path.join(store.root, 'a'), b: path.join(store.root, 'b') };
  }

  it('puts sync no directory; syncEntries syncs each one once, however many files went into it', async () => {
    const { store, a, b } = await storeWithFolders();
    for (const key of ['a/1', 'a/2', 'a/3', 'b/1'])
      await store.put(key, Buffer.from(key), { durable: 'contents' });
    expect(await store.getBytes('a/2')).toEqual(Buffer.from('a/2'));
    expect(dirSyncs.synced).toEqual([]);
    await store.syncEntries();
    expect(dirSyncs.synced.sort()).toEqual([a, b]);
    await store.syncEntries();
    expect(dirSyncs.synced).toHaveLength(2);
    // A durable put, for contrast, syncs its directory before it resolves.
    await store.put('a/4', Buffer.from('a/4'));
    expect(dirSyncs.synced.filter((dir) => dir === a)).toHaveLength(2);
  });

  it('syncEntries returns only once a sync another caller began is done', async () => {
    const { store, a } = await storeWithFolders();
    await store.put('a/1', Buffer.from('1'), { durable: 'contents' });
    let release!: () => void;
    dirSyncs.gate = new Promise((resolve) => (release = resolve));
    const first = store.syncEntries();
    let secondDone = false;
    const second = store.syncEntries().then(() => (secondDone = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(secondDone).toBe(false);
    release();
    await Promise.all([first, second]);
    expect(dirSyncs.synced).toEqual([a]);
  });

  it('a directory whose fsync failed is synced again by the next syncEntries', async () => {
    const { store, a } = await storeWithFolders();
    await store.put('a/1', Buffer.from('1'), { durable: 'contents' });
    dirSyncs.failNext = true;
    await expect(store.syncEntries()).rejects.toThrow(/EIO/);
    await store.syncEntries();
    expect(dirSyncs.synced).toEqual([a]);
  });
});
