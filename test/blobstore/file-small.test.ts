import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BlobNotFoundError, FileBlobStore } from '../../src/blobstore/index.ts';
import { tempDir } from '../support/temp.ts';

let temp: ReturnType<typeof tempDir> | undefined;
afterEach(() => temp?.remove());

describe('FileBlobStore.getIfSmall', () => {
  it('gives a blob whole up to the limit, nothing above it, and not-found for a missing key or a folder', async () => {
    temp = tempDir('blobstore-small');
    const store = new FileBlobStore(path.join(temp.dir, 'store'));
    const bytes = randomBytes(30_000);
    await store.put('a/b.jpg', bytes);
    expect((await store.getIfSmall('a/b.jpg', 30_000))?.equals(bytes)).toBe(true);
    expect(await store.getIfSmall('a/b.jpg', 29_999)).toBeUndefined();
    await store.put('empty', Buffer.alloc(0));
    expect((await store.getIfSmall('empty', 0))?.length).toBe(0);
    await expect(store.getIfSmall('a/missing.jpg', 1e6)).rejects.toBeInstanceOf(BlobNotFoundError);
    await mkdir(path.join(temp.dir, 'store', 'dir'), { recursive: true });
    await expect(store.getIfSmall('dir', 1e6)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.getIfSmall('../escape', 1e6)).rejects.toThrow(/Invalid blob key/);
  });
});
