import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { PutOptions } from '../../../src/blobstore/blobstore.ts';
import { FileBlobStore } from '../../../src/blobstore/index.ts';
import { Repository } from '../../../src/vault/repository/index.ts';
import { AUTH_KEY, digest, filesUnder, PASSWORD, type TempRepo, tempRepo } from './helpers.ts';

let t: TempRepo;
afterEach(() => t?.remove());

const snapshot = (files: string, parent?: string) => ({
  time: new Date().toISOString(),
  host: 'h',
  tags: [],
  trees: { files },
  ...(parent ? { parent } : {}),
});

/** A folder of `count` small incompressible files: the shape packs are for. */
async function smallFiles(dir: string, count: number, seed = 'a'): Promise<Map<string, string>> {
  await mkdir(dir, { recursive: true });
  const digests = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const bytes = Buffer.concat([Buffer.from(`${seed}${i}`), randomBytes(2000 + i)]);
    await writeFile(path.join(dir, `f${i}.bin`), bytes);
    digests.set(`f${i}.bin`, digest(bytes));
  }
  return digests;
}

async function restoredDigests(repo: Repository, tree: string, dir: string): Promise<Map<string, string>> {
  await repo.restoreTree(tree, dir);
  const out = new Map<string, string>();
  for (const file of await filesUnder(dir)) out.set(file, digest(await readFile(path.join(dir, file))));
  return out;
}

const reopen = (encrypted: boolean) =>
  Repository.open(new FileBlobStore(t.root), encrypted ? { password: PASSWORD } : { authKey: AUTH_KEY });

describe.each([
  ['unencrypted', false],
  ['encrypted', true],
])('pack files (%s)', (_label, encrypted) => {
  it('a backup into a new repository writes packs and one index, no blob files, and restores from them', async () => {
    t = await tempRepo({ encrypted });
    expect(t.repo.config.version).toBe(3);
    const source = path.join(t.work, 'source');
    const expected = await smallFiles(source, 300);
    t.repo.packBlobs();
    const stored = await t.repo.storeDirectory(source);
    await t.repo.saveSnapshot(snapshot(stored.treeId));

    const files = await filesUnder(t.root);
    expect(files.filter((f) => f.startsWith('data/'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('packs/')).length).toBe(1);
    expect(files.filter((f) => f.startsWith('index/')).length).toBe(1);

    const fresh = await reopen(encrypted);
    expect(await restoredDigests(fresh, stored.treeId, path.join(t.work, 'out'))).toEqual(expected);
    const report = await fresh.check({ readData: true });
    expect(report).toMatchObject({ ok: true, formatVersion: 3, packs: 1, unindexedPacks: [] });
    expect(report.blobs).toBe(301);
  });

  it('a blob stored but not yet flushed reads back, from memory or from its written pack, and once indexed', async () => {
    t = await tempRepo({ encrypted });
    t.repo.packBlobs();
    const contents = Array.from({ length: 20 }, (_, i) => randomBytes(i === 0 ? 1000 : 1024 * 1024));
    const ids: string[] = [];
    for (const content of contents) ids.push((await t.repo.putBlob('data', content)).id);
    const readAll = async () => {
      for (const [i, id] of ids.entries())
        expect(digest(await t.repo.getBlob(id))).toBe(digest(contents[i]!));
    };
    await readAll();
    expect(await t.repo.hasBlob(ids[0]!)).toBe(false);
    await t.repo.flushBlobs();
    expect(await t.repo.hasBlob(ids[0]!)).toBe(true);
    await readAll();
    // Stored again after the flush: already held, nothing written.
    expect((await t.repo.putBlob('data', contents[3]!)).stored).toBe(false);
  });

  it('blobs packed but never flushed are not findable, and the next prune deletes their packs', async () => {
    t = await tempRepo({ encrypted });
    const source = path.join(t.work, 'source');
    await smallFiles(source, 50);
    const kept = await t.repo.storeDirectory(source);
    const first = await t.repo.saveSnapshot(snapshot(kept.treeId));
    // A backup whose packs are written but whose index is not (the disk fills up at that moment).
    const failing = new FileBlobStore(t.root);
    const put = failing.put.bind(failing);
    failing.put = async (key, body, options) => {
      if (key.startsWith('index/')) throw new Error('No space left on device.');
      return put(key, body, options);
    };
    const crashed = await Repository.open(
      failing,
      encrypted ? { password: PASSWORD } : { authKey: AUTH_KEY },
    );
    crashed.packBlobs();
    for (let i = 0; i < 24; i++) await crashed.putBlob('data', randomBytes(1024 * 1024));
    await expect(crashed.flushBlobs()).rejects.toThrow('No space left');
    const orphans = (await filesUnder(t.root)).filter((f) => f.startsWith('packs/'));
    expect(orphans.length).toBeGreaterThan(0);

    const fresh = await reopen(encrypted);
    const report = await fresh.check({});
    expect(report.ok).toBe(true);
    expect(report.unindexedPacks.length).toBe(orphans.length);
    expect(report.unreferencedBlobs).toEqual([]);
    const pruned = await fresh.pruneBlobs(new Set(), () => {});
    expect(pruned.packsDeleted).toBe(orphans.length);
    expect((await filesUnder(t.root)).filter((f) => f.startsWith('packs/'))).toEqual([]);
    expect((await fresh.loadSnapshot(first)).trees['files']).toBe(kept.treeId);
  });

  it('prune rewrites packs holding dead and live blobs and deletes dead ones; what remains restores', async () => {
    t = await tempRepo({ encrypted });
    const source = path.join(t.work, 'source');
    await smallFiles(source, 200, 'old');
    t.repo.packBlobs();
    const one = await t.repo.storeDirectory(source);
    await t.repo.saveSnapshot(snapshot(one.treeId));
    // Half the files change: the second snapshot shares the other half with the first.
    for (let i = 0; i < 100; i++) await writeFile(path.join(source, `f${i}.bin`), randomBytes(3000));
    const expected = new Map<string, string>();
    for (const file of await filesUnder(source))
      expected.set(file, digest(await readFile(path.join(source, file))));
    const two = await t.repo.storeDirectory(source, { parentTree: one.treeId });
    const second = await t.repo.saveSnapshot(snapshot(two.treeId));
    const before = await t.repo.check({});
    const [firstId] = (await t.repo.listSnapshots()).filter((id) => id !== second);
    await t.repo.deleteSnapshot(firstId!);
    const report = await t.repo.check({});
    expect(report.unreferencedBlobs!.length).toBe(101); // 100 old files and the old root tree
    const pruned = await t.repo.pruneBlobs(new Set(report.unreferencedBlobs), () => {});
    expect(pruned).toMatchObject({ blobs: 101, packsRewritten: 1 });
    expect(pruned.packsDeleted).toBe(1);

    const fresh = await reopen(encrypted);
    const after = await fresh.check({ readData: true });
    expect(after).toMatchObject({ ok: true, unindexedPacks: [], unreferencedBlobs: [] });
    expect(after.blobs).toBe(before.blobs - 101);
    expect((await filesUnder(t.root)).filter((f) => f.startsWith('index/')).length).toBe(2);
    expect(await restoredDigests(fresh, two.treeId, path.join(t.work, 'out'))).toEqual(expected);
  });

  it('prune deletes a dead blob stored both as its own file and in a pack, both copies', async () => {
    t = await tempRepo({ encrypted });
    const packing = await reopen(encrypted);
    packing.packBlobs();
    await packing.index.load();
    const content = randomBytes(5000);
    // One process stores it as its own file, another, whose index was loaded before, packs it again.
    const { id } = await t.repo.putBlob('data', content);
    expect((await packing.putBlob('data', content)).stored).toBe(true);
    await packing.flushBlobs();
    const fresh = await reopen(encrypted);
    const report = await fresh.check({});
    expect(report.unreferencedBlobs).toEqual([id]);
    expect(await fresh.pruneBlobs(new Set([id]), () => {})).toMatchObject({ blobs: 1, packsDeleted: 1 });
    expect((await filesUnder(t.root)).filter((f) => /^(data|packs|index)\//.test(f))).toEqual([]);
  });

  it('repair moves a pack with a damaged blob aside after storing its good blobs as their own files', async () => {
    t = await tempRepo({ encrypted });
    const source = path.join(t.work, 'source');
    await smallFiles(source, 40);
    t.repo.packBlobs();
    const stored = await t.repo.storeDirectory(source);
    await t.repo.saveSnapshot(snapshot(stored.treeId));
    const [pack] = (await filesUnder(t.root)).filter((f) => f.startsWith('packs/'));
    const location = await t.repo.index.location(
      (await t.repo.readTree(stored.treeId)).entries[5]!.chunks![0]!,
    );
    const bytes = await readFile(path.join(t.root, pack!));
    const at = location!.offset + 40;
    bytes[at] = bytes[at]! ^ 0x5a;
    await writeFile(path.join(t.root, pack!), bytes);

    const fresh = await reopen(encrypted);
    const report = await fresh.check({ readData: true, repair: true });
    expect(report.damagedBlobs.map((b) => b.paths[0]?.path)).toEqual([
      `files/${(await fresh.readTree(stored.treeId)).entries[5]!.name}`,
    ]);
    expect(report.quarantined.map((q) => q.key)).toEqual([pack]);
    const after = await (await reopen(encrypted)).check({ readData: true });
    expect(after.packs).toBe(0);
    expect(after.damagedBlobs).toEqual([]);
    // Only the damaged file's chunk is gone: the other 39 files and the tree were saved as their own files.
    expect(after.missingBlobs.map((b) => b.id)).toEqual(report.damagedBlobs.map((b) => b.id));
    expect(after.blobs).toBe(40);
  });

  it('an unreadable index is reported, stops prune, and repair rebuilds it from the packs’ trailers', async () => {
    t = await tempRepo({ encrypted });
    const source = path.join(t.work, 'source');
    const expected = await smallFiles(source, 60);
    t.repo.packBlobs();
    const stored = await t.repo.storeDirectory(source);
    await t.repo.saveSnapshot(snapshot(stored.treeId));
    const [index] = (await filesUnder(t.root)).filter((f) => f.startsWith('index/'));
    await writeFile(path.join(t.root, index!), randomBytes(500));

    const fresh = await reopen(encrypted);
    const report = await fresh.check({});
    expect(report.ok).toBe(false);
    expect(report.unreadableIndexes.length).toBe(1);
    expect(report.unindexedPacks.length).toBe(1);
    expect(report.unreferencedBlobs).toBeUndefined();

    const repaired = await fresh.check({ repair: true });
    expect(repaired.quarantined.map((q) => q.key)).toEqual([index]);
    const again = await reopen(encrypted);
    expect(await again.check({ readData: true })).toMatchObject({ ok: true, unindexedPacks: [], packs: 1 });
    expect(await restoredDigests(again, stored.treeId, path.join(t.work, 'out'))).toEqual(expected);
  });

  it('a copy to another target packs there too, and the copy restores', async () => {
    t = await tempRepo({ encrypted });
    const source = path.join(t.work, 'source');
    const expected = await smallFiles(source, 80);
    t.repo.packBlobs();
    const stored = await t.repo.storeDirectory(source);
    const id = await t.repo.saveSnapshot(snapshot(stored.treeId));
    const otherRoot = path.join(t.work, 'other');
    const other = await Repository.init(new FileBlobStore(otherRoot), {
      like: t.repo,
      ...(encrypted ? { password: PASSWORD } : { authKey: AUTH_KEY }),
    });
    const copied = await t.repo.copySnapshotsTo(other, [id]);
    expect(copied.blobsCopied).toBe(81);
    const files = await filesUnder(otherRoot);
    expect(files.filter((f) => f.startsWith('data/'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('packs/')).length).toBe(1);
    const reopened = await Repository.open(
      new FileBlobStore(otherRoot),
      encrypted ? { password: PASSWORD } : { authKey: AUTH_KEY },
    );
    expect(await restoredDigests(reopened, stored.treeId, path.join(t.work, 'out'))).toEqual(expected);
  });
});

/** Records the order of writes and entry syncs, and how durable each write was asked to be. */
class OrderedStore extends FileBlobStore {
  readonly events: string[] = [];
  override async put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<void> {
    await super.put(key, body, options);
    this.events.push(`put ${key.split('/')[0]} ${options?.durable ?? true}`);
  }
  override async syncEntries(): Promise<void> {
    await super.syncEntries();
    this.events.push('syncEntries');
  }
}

describe('pack writing (I6)', () => {
  it('packs are written with their names synced once, after the last pack and before the index that names them', async () => {
    t = await tempRepo();
    const store = new OrderedStore(t.root);
    const repo = await Repository.open(store, { authKey: AUTH_KEY });
    repo.packBlobs();
    // Three packs' worth: 24 blobs of 1 MiB into 8 MiB packs.
    for (let i = 0; i < 24; i++) await repo.putBlob('data', randomBytes(1024 * 1024), { compress: false });
    await repo.flushBlobs();
    const packs = store.events.filter((e) => e.startsWith('put packs'));
    expect(packs.length).toBeGreaterThanOrEqual(3);
    expect(new Set(packs)).toEqual(new Set(['put packs contents']));
    const synced = store.events.indexOf('syncEntries');
    expect(store.events.slice(synced + 1)).toEqual(['put index true']);
    expect(store.events.slice(0, synced).every((e) => e.startsWith('put packs'))).toBe(true);
  });
});
