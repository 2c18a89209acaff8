import { randomBytes } from 'node:crypto';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Repository,
  type TreeEntry,
  walRecordKey,
  writeWalRecord,
} from '../../../src/vault/repository/index.ts';
import { blobFile, filesUnder, flipByte, PASSWORD, type TempRepo, tempRepo, textBytes } from './helpers.ts';

let t: TempRepo;
afterEach(() => t?.remove());

interface Fixture {
  first: string;
  second: string;
  /** File path (as check reports it, under source "files") → its chunk ids in the second snapshot. */
  chunksOf: Map<string, string[]>;
  rootTree: string;
}

/** Two snapshots of a folder with a dozen files; the second after one file changed. */
async function fixture(encrypted: boolean): Promise<Fixture> {
  t = await tempRepo({ encrypted });
  const source = path.join(t.work, 'source');
  await mkdir(path.join(source, 'images'), { recursive: true });
  for (let i = 0; i < 10; i++)
    await writeFile(path.join(source, 'images', `img${i}.jpg`), randomBytes(3000 + i));
  await writeFile(path.join(source, 'dump.sql'), Buffer.concat([textBytes(100_000), randomBytes(300_000)]));
  const one = await t.repo.storeDirectory(source);
  const first = await t.repo.saveSnapshot({
    time: '2025-01-01T00:00:00Z',
    host: 'h',
    tags: [],
    trees: { files: one.treeId },
  });
  await writeFile(path.join(source, 'images', 'img0.jpg'), randomBytes(5000));
  const two = await t.repo.storeDirectory(source, { parentTree: one.treeId });
  const second = await t.repo.saveSnapshot({
    time: '2025-01-02T00:00:00Z',
    host: 'h',
    tags: [],
    parent: first,
    trees: { files: two.treeId },
  });
  const chunksOf = new Map<string, string[]>();
  const walk = async (tree: string, prefix: string) => {
    for (const entry of (await t.repo.readTree(tree)).entries as TreeEntry[]) {
      if (entry.subtree) await walk(entry.subtree, `${prefix}${entry.name}/`);
      else chunksOf.set(`${prefix}${entry.name}`, entry.chunks ?? []);
    }
  };
  await walk(two.treeId, 'files/');
  return { first, second, chunksOf, rootTree: two.treeId };
}

describe.each([
  ['unencrypted', false],
  ['encrypted', true],
])('check (%s)', (_label, encrypted) => {
  it('I7: a healthy repository passes with and without reading data', async () => {
    await fixture(encrypted);
    for (const readData of [false, true]) {
      const report = await t.repo.check({ readData });
      expect(report).toMatchObject({
        ok: true,
        snapshots: 2,
        damagedBlobs: [],
        missingBlobs: [],
        damagedSnapshots: [],
      });
      expect(report.trees).toBe(4);
      expect(report.unreferencedBlobs).toEqual([]);
    }
  });

  it('I7: flipped bytes in 5 blobs: check --read-data names exactly those and the files they break', async () => {
    const f = await fixture(encrypted);
    const victims = ['files/images/img3.jpg', 'files/images/img7.jpg', 'files/dump.sql'];
    const dumpChunks = f.chunksOf.get('files/dump.sql')!;
    const broken = [
      f.chunksOf.get(victims[0]!)![0]!,
      f.chunksOf.get(victims[1]!)![0]!,
      ...dumpChunks.slice(0, 3),
    ];
    for (const id of broken) await flipByte(blobFile(t.root, id));

    expect((await t.repo.check()).ok).toBe(true); // structure alone cannot see data damage
    const report = await t.repo.check({ readData: true });
    expect(report.ok).toBe(false);
    expect(report.damagedBlobs.map((b) => b.id)).toEqual([...broken].sort());
    expect(report.missingBlobs).toEqual([]);
    const pathsOf = (id: string) => report.damagedBlobs.find((b) => b.id === id)!.paths;
    // Unchanged files are in both snapshots; each damaged blob names both.
    expect(pathsOf(broken[0]!)).toEqual(
      [f.first, f.second].sort().map((snapshot) => ({ snapshot, path: 'files/images/img3.jpg' })),
    );
    for (const id of dumpChunks.slice(0, 3))
      expect(pathsOf(id).map((p) => p.path)).toEqual(['files/dump.sql', 'files/dump.sql']);
    for (const damage of report.damagedBlobs)
      expect(damage.reason).toMatch(/authentication failed|does not match|decompress/);
  });

  it('I7: a damaged tree, a missing blob and a damaged snapshot are each named', async () => {
    const f = await fixture(encrypted);
    const images = (await t.repo.readTree(f.rootTree)).entries.find((e) => e.name === 'images')!.subtree!;
    await flipByte(blobFile(t.root, images));
    const dumpChunk = f.chunksOf.get('files/dump.sql')![1]!;
    await unlink(blobFile(t.root, dumpChunk));
    await flipByte(path.join(t.root, 'snapshots', f.first));
    const report = await t.repo.check();
    expect(report.ok).toBe(false);
    expect(report.damagedSnapshots.map((s) => s.id)).toEqual([f.first]);
    expect(report.damagedBlobs).toEqual([
      { id: images, reason: expect.any(String), paths: [{ snapshot: f.second, path: 'files/images/' }] },
    ]);
    expect(report.missingBlobs).toEqual([
      { id: dumpChunk, reason: 'missing', paths: [{ snapshot: f.second, path: 'files/dump.sql' }] },
    ]);
    // Some references are unknown now, so nothing may be called unreferenced.
    expect(report.unreferencedBlobs).toBeUndefined();
  });
});

describe('check', () => {
  it('I6: a backup interrupted before its snapshot leaves a valid repository, and the next run reuses its blobs', async () => {
    t = await tempRepo({ encrypted: true });
    const source = path.join(t.work, 'source');
    await mkdir(source);
    await writeFile(path.join(source, 'dump.sql'), Buffer.concat([textBytes(50_000), randomBytes(200_000)]));
    const interrupted = await t.repo.storeDirectory(source); // the process dies here: no snapshot
    const reopened = await Repository.open(t.store, { password: PASSWORD });
    const report = await reopened.check({ readData: true });
    expect(report).toMatchObject({ ok: true, snapshots: 0 });
    expect(report.unreferencedBlobs!.length).toBe(interrupted.stats.blobsAdded);
    const resumed = await reopened.storeDirectory(source);
    expect(resumed.treeId).toBe(interrupted.treeId);
    expect(resumed.stats.blobsAdded).toBe(0);
  });

  it('a config damaged after opening fails the check', async () => {
    await fixture(false);
    await writeFile(path.join(t.root, 'config'), '{"version": 1');
    const report = await t.repo.check();
    expect(report.ok).toBe(false);
    expect(report.configProblem).toMatch(/config of the backup repository .* is unreadable/);
  });

  it('lists unreferenced blobs and foreign files without deleting anything', async () => {
    const f = await fixture(false);
    const orphan = (await t.repo.putBlob('data', Buffer.from('left by an interrupted backup'))).id;
    await t.repo.deleteSnapshot(f.first);
    await writeFile(path.join(t.root, 'data', 'stray.tmp'), 'x');
    const before = await filesUnder(t.root);
    const report = await t.repo.check({ readData: true });
    expect(report.ok).toBe(true);
    // The old img0.jpg content and the first snapshot's trees are now unreferenced too.
    expect(report.unreferencedBlobs).toContain(orphan);
    expect(report.unreferencedBlobs!.length).toBe(1 + 1 + 2);
    expect(report.unexpectedFiles).toEqual(['data/stray.tmp']);
    expect(await filesUnder(t.root)).toEqual(before);
  });

  it('a WAL record a live stream removes while check reads is not damage; one that stays unreadable is', async () => {
    const f = await fixture(false);
    const segment = '000000010000000000000006';
    const record = {
      kind: 'partial' as const,
      name: segment,
      tree: f.rootTree,
      size: 1,
      timeline: 1,
      shippedAt: new Date().toISOString(),
    };
    await writeWalRecord(t.repo, record);
    const key = walRecordKey('partial', segment);
    // The segment completes between check's listing and its read: protect removes the partial record.
    const get = t.store.get.bind(t.store);
    t.store.get = async (asked) => {
      if (asked === key) await t.store.delete(key);
      return await get(asked);
    };
    const gone = await t.repo.check();
    expect(gone.damagedRecords).toEqual([]);
    expect(gone.ok).toBe(true);
    t.store.get = get;
    await writeWalRecord(t.repo, record);
    await writeFile(path.join(t.root, key), 'not a record');
    const damaged = await t.repo.check();
    expect(damaged.damagedRecords).toEqual([key]);
    expect(damaged.ok).toBe(false);
  });
});
