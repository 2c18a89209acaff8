import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  InvalidSnapshotError,
  InvalidTreeError,
  MissingBlobError,
  Repository,
  SnapshotNotFoundError,
  type TreeEntry,
} from '../../../src/vault/repository/index.ts';
import { flipByte, PASSWORD, type TempRepo, tempRepo } from './helpers.ts';

let t: TempRepo;
afterEach(() => t?.remove());

const file = (name: string, chunks: string[], extra: Partial<TreeEntry> = {}): TreeEntry => ({
  name,
  type: 'file',
  mode: 0o644,
  mtimeMs: 1_700_000_000_123.25,
  size: 10,
  inode: 42,
  chunks,
  ...extra,
});

describe('trees', () => {
  it('canonical: the same entries in any order give the same id and the documented bytes', async () => {
    t = await tempRepo();
    const chunk = (await t.repo.putBlob('data', Buffer.from('0123456789'))).id;
    const sub = await t.repo.writeTree([]);
    const entries: TreeEntry[] = [
      file('b.txt', [chunk]),
      { name: 'a', type: 'dir', mode: 0o755, mtimeMs: 5, size: 0, subtree: sub },
      { name: 'link', type: 'symlink', mode: 0o777, mtimeMs: 6, size: 0, target: 'b.txt' },
    ];
    const id = await t.repo.writeTree(entries);
    expect(await t.repo.writeTree([...entries].reverse())).toBe(id);
    const plaintext = await t.repo.getBlob(id);
    expect(plaintext.toString()).toBe(
      `{"entries":[{"mode":493,"mtimeMs":5,"name":"a","size":0,"subtree":"${sub}","type":"dir"},` +
        `{"chunks":["${chunk}"],"inode":42,"mode":420,"mtimeMs":1700000000123.25,"name":"b.txt","size":10,"type":"file"},` +
        `{"mode":511,"mtimeMs":6,"name":"link","size":0,"target":"b.txt","type":"symlink"}]}`,
    );
    expect((await t.repo.readTree(id)).entries.map((e) => e.name)).toEqual(['a', 'b.txt', 'link']);
  });

  it('refuses to write or read entries named .., ., empty, or containing a slash', async () => {
    t = await tempRepo();
    for (const name of ['..', '.', '', 'a/b', 'nul\0']) {
      await expect(t.repo.writeTree([file(name, [])]), name).rejects.toThrow(TypeError);
      const forged = Buffer.from(JSON.stringify({ entries: [file(name, [])] }));
      const { id } = await t.repo.putBlob('tree', forged);
      const error = await t.repo.readTree(id).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(InvalidTreeError);
      expect((error as Error).message).toContain(id);
    }
  });

  it('refuses malformed trees: duplicates, unknown types, missing fields, not JSON', async () => {
    t = await tempRepo();
    const bad = [
      { entries: [file('x', []), file('x', [])] },
      { entries: [{ ...file('x', []), type: 'fifo' }] },
      { entries: [{ name: 'd', type: 'dir', mode: 0o755, mtimeMs: 0, size: 0 }] },
      { entries: [{ name: 's', type: 'symlink', mode: 0o777, mtimeMs: 0, size: 0 }] },
      { entries: [file('x', ['not-an-id'])] },
      { entries: [file('x', [], { mode: 0o170000 })] },
      { nothing: true },
    ];
    for (const value of bad) {
      const { id } = await t.repo.putBlob('tree', Buffer.from(JSON.stringify(value)));
      await expect(t.repo.readTree(id), JSON.stringify(value)).rejects.toBeInstanceOf(InvalidTreeError);
    }
    const { id } = await t.repo.putBlob('tree', Buffer.from('{"entries": ['));
    await expect(t.repo.readTree(id)).rejects.toThrow(/not JSON/);
  });
});

describe('snapshots', () => {
  it('I6: save, list, load and delete; encrypted snapshots load after reopening', async () => {
    t = await tempRepo({ encrypted: true });
    const tree = await t.repo.writeTree([]);
    const record = {
      time: '2025-01-02T03:04:05.000Z',
      host: 'backup-host',
      tags: ['daily'],
      trees: { prompts: tree, objects: tree },
      facts: { postgres: { version: '15.8', rows: { generations: 1_000_000 } } },
    };
    const first = await t.repo.saveSnapshot(record);
    const second = await t.repo.saveSnapshot({ ...record, time: '2025-01-03T03:04:05.000Z', parent: first });
    expect(await t.repo.listSnapshots()).toEqual([first, second].sort());
    const reopened = await Repository.open(t.store, { password: PASSWORD });
    expect(await reopened.loadSnapshot(first)).toEqual({ ...record, id: first });
    expect((await reopened.loadSnapshot(second)).parent).toBe(first);
    await reopened.deleteSnapshot(first);
    expect(await reopened.listSnapshots()).toEqual([second]);
    await expect(reopened.loadSnapshot(first)).rejects.toBeInstanceOf(SnapshotNotFoundError);
  });

  it('I6: a snapshot whose root tree is not in the repository is not written', async () => {
    t = await tempRepo();
    const absent = t.repo.blobId(Buffer.from('a tree never stored'));
    const record = { time: new Date().toISOString(), host: 'h', tags: [], trees: { prompts: absent } };
    await expect(t.repo.saveSnapshot(record)).rejects.toBeInstanceOf(MissingBlobError);
    expect(await t.repo.listSnapshots()).toEqual([]);
  });

  it('I7: a tampered, truncated or malformed snapshot is InvalidSnapshotError naming it', async () => {
    for (const encrypted of [false, true]) {
      t = await tempRepo({ encrypted });
      const tree = await t.repo.writeTree([]);
      const id = await t.repo.saveSnapshot({
        time: new Date().toISOString(),
        host: 'h',
        tags: [],
        trees: { p: tree },
      });
      const stored = path.join(t.root, 'snapshots', id);
      await flipByte(stored);
      const error = await t.repo.loadSnapshot(id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidSnapshotError);
      expect((error as Error).message).toContain(id);
      await writeFile(stored, (await readFile(stored)).subarray(0, 3));
      await expect(t.repo.loadSnapshot(id)).rejects.toBeInstanceOf(InvalidSnapshotError);
      t.remove();
    }
    // Well-formed bytes under the right name, but not a snapshot record.
    t = await tempRepo();
    for (const value of ['[1,2]', '{"time":"yesterday","host":"h","tags":[],"trees":{}}', 'nope']) {
      const plaintext = Buffer.from(value);
      const id = t.repo.blobId(plaintext);
      await t.store.put(`snapshots/${id}`, Buffer.concat([Buffer.from([2, 0]), plaintext]));
      await expect(t.repo.loadSnapshot(id), value).rejects.toBeInstanceOf(InvalidSnapshotError);
    }
  });
});
