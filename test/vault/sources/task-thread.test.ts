import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { ObjectSealThread } from '../../../src/vault/sources/objects-seal-thread.ts';
import { type TempRepo, tempRepo } from '../repository/helpers.ts';

const keyOf = (bytes: Buffer) => `generated/${createHash('sha256').update(bytes).digest('hex')}.jpg`;

describe('a task thread', () => {
  let temp: TempRepo | undefined;
  afterEach(() => {
    vi.restoreAllMocks();
    return temp?.remove();
  });

  it('sends the tasks asked for in one turn as one message and answers each of them', async () => {
    temp = await tempRepo();
    const source = new FileBlobStore(path.join(temp.work, 'source'));
    // Seven and a missing one: eight, what the seal thread takes before it has seen any object's size.
    const objects = Array.from({ length: 7 }, () => randomBytes(20_000));
    for (const bytes of objects) await source.put(keyOf(bytes), bytes);
    const posted = vi.spyOn(Worker.prototype, 'postMessage');
    const thread = ObjectSealThread.start(temp.repo, source)!;
    try {
      const missing = `generated/${'0'.repeat(64)}.jpg`;
      const stored = await Promise.all(
        [...objects.map(keyOf), missing].map((key) => thread.store(key, key.slice(10, 74))),
      );
      expect(posted).toHaveBeenCalledTimes(1);
      // Each answer is its own task's: the sizes are the objects', the missing one goes back to the main thread.
      expect(stored.slice(0, 7).map((file) => file?.size)).toEqual(objects.map((bytes) => bytes.length));
      expect(stored[7]).toBeUndefined();
      await temp.repo.flushBlobs();
      for (const [i, file] of stored.slice(0, 7).entries()) {
        expect((await temp.repo.getBlob(file!.chunks[0]!)).equals(objects[i]!)).toBe(true);
      }
    } finally {
      await thread.close();
    }
  });
});
