import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { PutOptions } from '../../../src/blobstore/blobstore.ts';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { backupObjects } from '../../../src/vault/sources/objects.ts';
import { restoreObjects } from '../../../src/vault/sources/objects-restore.ts';
import { blobFile, type TempRepo, tempRepo } from '../repository/helpers.ts';

/** Records how each put was asked to be durable, and how often the store was flushed. */
class WatchedStore extends FileBlobStore {
  readonly durability: Array<boolean | 'contents'> = [];
  flushes = 0;
  override async put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<void> {
    this.durability.push(options?.durable ?? true);
    await super.put(key, body, options);
  }
  override async flush(): Promise<void> {
    this.flushes++;
    await super.flush();
  }
}

let temp: TempRepo | undefined;
afterEach(() => temp?.remove());

/** A snapshot of `count` objects of 20 KB and more; `packed`: in an encrypted repository that packs its blobs. */
async function snapshotOf(count: number, packed = false) {
  temp = await tempRepo({ encrypted: packed });
  const source = new FileBlobStore(path.join(temp.work, 'source'));
  const objects = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const bytes = randomBytes(20_000 + i * 1000);
    const key = `examples/${createHash('sha256').update(bytes).digest('hex')}.jpg`;
    await source.put(key, bytes);
    objects.set(key, bytes);
  }
  if (packed) temp.repo.packBlobs();
  const { treeId } = await backupObjects(temp.repo, source, [...objects.keys()]);
  await temp.repo.flushBlobs();
  return { repo: temp.repo, treeId, objects, work: temp.work, root: temp.root };
}

describe('restoring objects: one flush at the end, and nothing a crash left is trusted by its size', () => {
  it('writes every object without an fsync each, then flushes the store once before it resolves', async () => {
    const { repo, treeId, objects, work } = await snapshotOf(6);
    const target = new WatchedStore(path.join(work, 'restored'));
    const result = await restoreObjects(repo, treeId, target, { syncOnce: true });
    expect(result).toMatchObject({ written: 6, present: 0, damaged: [] });
    expect(target.durability).toEqual(Array(6).fill(false));
    expect(target.flushes).toBe(1);
    for (const [key, bytes] of objects) {
      expect(readFileSync(path.join(work, 'restored', ...key.split('/'))).equals(bytes)).toBe(true);
    }
  });

  it('a rerun after a crash rewrites an object whose file has the right size but not its bytes', async () => {
    const { repo, treeId, objects, work } = await snapshotOf(4);
    const target = new WatchedStore(path.join(work, 'restored'));
    await restoreObjects(repo, treeId, target, { syncOnce: true });
    // What a power loss can leave of a file renamed into place before its data reached the disk.
    const [tornKey, tornBytes] = [...objects][2]!;
    const tornFile = path.join(work, 'restored', ...tornKey.split('/'));
    writeFileSync(tornFile, Buffer.alloc(tornBytes.length));

    const rerun = await restoreObjects(repo, treeId, target, { syncOnce: true });
    expect(rerun).toMatchObject({ written: 1, present: 3, damaged: [] });
    // An interrupted run's objects may still be only in the page cache: the rerun flushes even when it writes none.
    await restoreObjects(repo, treeId, target, { syncOnce: true });
    expect(target.flushes).toBe(3);
    expect(readFileSync(tornFile).equals(tornBytes)).toBe(true);
  });

  it('restoring a few named objects asks for each and still re-hashes one found in place', async () => {
    const { repo, treeId, objects, work } = await snapshotOf(5);
    const target = new WatchedStore(path.join(work, 'restored'));
    const [first, second] = [...objects];
    const tornFile = path.join(work, 'restored', ...first![0].split('/'));
    await target.put(first![0], Buffer.alloc(first![1].length));
    const only = new Set([first![0], second![0]]);
    const result = await restoreObjects(repo, treeId, target, { only });
    expect(result).toMatchObject({ objects: 2, written: 2, present: 0, damaged: [] });
    expect(readFileSync(tornFile).equals(first![1])).toBe(true);
    expect(await restoreObjects(repo, treeId, target, { only })).toMatchObject({ written: 0, present: 2 });
  });

  it('durable unless asked: each object is fsynced, and nothing needs a flush', async () => {
    const { repo, treeId, work } = await snapshotOf(2);
    const target = new WatchedStore(path.join(work, 'restored'));
    await restoreObjects(repo, treeId, target);
    expect(target.durability).toEqual([true, true]);
    expect(target.flushes).toBe(0);
  });

  it('I7: a chunk replaced by another sealed blob of the same repository is named damaged and never written', async () => {
    const { repo, treeId, objects, work } = await snapshotOf(2);
    const [victimKey, otherKey] = [...objects.keys()] as [string, string];
    // Each object is one chunk; the chunk ids are not re-hashed on restore, the object's SHA-256 is.
    const chunkOf = (key: string) => repo.blobId(objects.get(key)!);
    const otherBlob = readFileSync(blobFile(temp!.root, chunkOf(otherKey)));
    writeFileSync(blobFile(temp!.root, chunkOf(victimKey)), otherBlob);
    const target = new WatchedStore(path.join(work, 'restored'));
    const result = await restoreObjects(repo, treeId, target, { syncOnce: true });
    expect(result).toMatchObject({ written: 1, damaged: [{ key: victimKey }] });
    expect(result.damaged[0]!.reason).toMatch(/do not hash to the SHA-256 in its name/);
    expect(await target.head(victimKey)).toBeUndefined();
  });
});

describe('restoring objects from packs on two threads', () => {
  it('a few objects are written by the main thread alone: no second thread is started for them', async () => {
    const { repo, treeId, work } = await snapshotOf(5, true);
    const target = new WatchedStore(path.join(work, 'restored'));
    expect(await restoreObjects(repo, treeId, target, { syncOnce: true })).toMatchObject({ written: 5 });
    expect(target.durability).toEqual(Array(5).fill(false));
  });

  it('every object comes back byte for byte, some written by the second thread', async () => {
    const { repo, treeId, objects, work } = await snapshotOf(40, true);
    const target = new WatchedStore(path.join(work, 'restored'));
    const result = await restoreObjects(repo, treeId, target, { syncOnce: true });
    expect(result).toMatchObject({ written: 40, present: 0, damaged: [] });
    // The main thread's writes go through the store; the second thread's do not.
    expect(target.durability.length).toBeLessThan(40);
    expect(target.flushes).toBe(1);
    for (const [key, bytes] of objects) {
      expect(readFileSync(path.join(work, 'restored', ...key.split('/'))).equals(bytes)).toBe(true);
    }
  });

  it('two worker threads share the objects: both from the start, or the second once the database is loaded', async () => {
    const first = await snapshotOf(40, true);
    const both = await restoreObjects(
      first.repo,
      first.treeId,
      new FileBlobStore(path.join(first.work, 'a')),
      {
        syncOnce: true,
      },
    );
    expect(both.written).toBe(40);
    expect(both.threadWrites).toHaveLength(2);
    expect(Math.min(...both.threadWrites)).toBeGreaterThan(0);

    // While the database loads, one thread: the second core is the database's.
    const loading = new Promise<void>(() => {});
    const beside = await restoreObjects(
      first.repo,
      first.treeId,
      new FileBlobStore(path.join(first.work, 'b')),
      {
        syncOnce: true,
        secondCoreFree: loading,
      },
    );
    expect(beside.threadWrites).toEqual([40]);

    // The database loaded after the tenth object: the rest go to two threads.
    let loaded!: () => void;
    const secondCoreFree = new Promise<void>((resolve) => (loaded = resolve));
    const after = await restoreObjects(
      first.repo,
      first.treeId,
      new FileBlobStore(path.join(first.work, 'c')),
      {
        syncOnce: true,
        secondCoreFree,
        onProgress: (done) => {
          if (done === 10) loaded();
        },
      },
    );
    expect(after.written).toBe(40);
    expect(after.threadWrites).toHaveLength(2);
    expect(after.threadWrites[0]).toBeGreaterThanOrEqual(10);
    expect(after.threadWrites[1]).toBeGreaterThan(0);
    for (const [key, bytes] of first.objects) {
      expect(readFileSync(path.join(first.work, 'c', ...key.split('/'))).equals(bytes)).toBe(true);
    }
  });

  it('I7: objects whose pack is damaged are named, on either thread, and none is written', async () => {
    const { repo, treeId, work, root } = await snapshotOf(40, true);
    const packs = readdirSync(path.join(root, 'packs'), { recursive: true, withFileTypes: true });
    for (const pack of packs.filter((entry) => entry.isFile())) {
      const file = path.join(pack.parentPath, pack.name);
      const bytes = readFileSync(file);
      // Every 10 KB a flipped byte: every blob, trailer aside, gets at least one.
      for (let at = 5_000; at < bytes.length - 10_000; at += 10_000) bytes[at]! ^= 0xff;
      writeFileSync(file, bytes);
    }
    const target = new WatchedStore(path.join(work, 'restored'));
    const result = await restoreObjects(repo, treeId, target, { syncOnce: true });
    expect(result.written).toBe(0);
    expect(result.damaged).toHaveLength(40);
    for (const { reason } of result.damaged) expect(reason).toMatch(/authentication failed/);
    expect(target.durability).toEqual([]);
  });

  it('a failure on the second thread that is not damage is met again by the main thread, which names it', async () => {
    const { repo, treeId, work } = await snapshotOf(40, true);
    const restored = path.join(work, 'restored');
    // A file where the objects' folder must go: no object can be written, by either thread.
    mkdirSync(restored, { recursive: true });
    writeFileSync(path.join(restored, 'examples'), 'in the way');
    const twoThreads = await restoreObjects(repo, treeId, new FileBlobStore(restored), { syncOnce: true });
    const mainOnly = await restoreObjects(repo, treeId, new FileBlobStore(restored));
    expect(twoThreads.written).toBe(0);
    expect(twoThreads.damaged).toHaveLength(40);
    const reasons = (r: typeof mainOnly) => r.damaged.map((d) => `${d.key}: ${d.reason}`).sort();
    expect(reasons(twoThreads)).toEqual(reasons(mainOnly));
  });
});
