import { randomBytes } from 'node:crypto';
import {
  chmod,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  fileContents,
  InvalidTreeError,
  linkStaysInside,
  RestoreIncompleteError,
  type TreeEntry,
} from '../../../src/vault/repository/index.ts';
import { blobFile, digest, flipByte, SMALL_CHUNKS, type TempRepo, tempRepo, textBytes } from './helpers.ts';

let t: TempRepo;
afterEach(() => t?.remove());

/** A small service-like folder: nested dirs, images, a dump bigger than several chunks, empty files, links. */
async function makeSource(root: string): Promise<void> {
  await mkdir(path.join(root, 'prompts'), { recursive: true });
  await mkdir(path.join(root, 'objects/ab/cd'), { recursive: true });
  await mkdir(path.join(root, 'empty-dir'));
  await writeFile(path.join(root, 'prompts/ghibli.yaml'), 'name: ghibli\ntemplate: "x"\n');
  await writeFile(path.join(root, 'prompts/empty.yaml'), '');
  await writeFile(
    path.join(root, 'objects/ab/cd/image.png'),
    Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), randomBytes(40_000)]),
  );
  await writeFile(path.join(root, 'dump.sql'), Buffer.concat([textBytes(300_000), randomBytes(600_000)]));
  await writeFile(path.join(root, 'script.sh'), '#!/bin/sh\necho hi\n');
  await chmod(path.join(root, 'script.sh'), 0o750);
  await chmod(path.join(root, 'prompts'), 0o700);
  await symlink('prompts/ghibli.yaml', path.join(root, 'current.yaml'));
  await symlink('../dump.sql', path.join(root, 'objects/dump-link'));
  await utimes(path.join(root, 'dump.sql'), 1_600_000_000, 1_600_000_000.5);
}

/** Relative paths of everything under dir, links not followed (Node 20's recursive readdir follows them). */
async function walk(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = path.join(prefix, entry.name);
    out.push(rel);
    if (entry.isDirectory()) out.push(...(await walk(dir, rel)));
  }
  return out.sort();
}

interface Node {
  type: string;
  mode: number;
  mtimeMs?: number;
  content?: string;
  target?: string;
}

/** Everything a restore must reproduce, by relative path. */
async function snapshotOf(root: string): Promise<Record<string, Node>> {
  const out: Record<string, Node> = {};
  for (const rel of await walk(root)) {
    const abs = path.join(root, rel);
    const info = await lstat(abs);
    const mode = info.mode & 0o7777;
    if (info.isSymbolicLink()) out[rel] = { type: 'symlink', mode: 0, target: await readlink(abs) };
    else if (info.isDirectory()) out[rel] = { type: 'dir', mode, mtimeMs: Math.round(info.mtimeMs) };
    else
      out[rel] = {
        type: 'file',
        mode,
        mtimeMs: Math.round(info.mtimeMs),
        content: digest(await readFile(abs)),
      };
  }
  return out;
}

describe('storeDirectory', () => {
  it('I7: a second run over an unchanged tree reads nothing and gives the same tree id; one change reads one file', async () => {
    t = await tempRepo();
    const source = path.join(t.work, 'source');
    await makeSource(source);
    const first = await t.repo.storeDirectory(source, { concurrency: 3 });
    expect(first.stats).toMatchObject({
      filesNew: 5,
      filesChanged: 0,
      filesUnchanged: 0,
      dirs: 5,
      symlinks: 2,
    });
    expect(first.stats.bytesRead).toBe(27 + 0 + 40_008 + 900_000 + 18);
    expect(first.stats.blobsAdded).toBeGreaterThan(10);

    const second = await t.repo.storeDirectory(source, { parentTree: first.treeId });
    expect(second.treeId).toBe(first.treeId);
    expect(second.stats).toMatchObject({
      filesNew: 0,
      filesChanged: 0,
      filesUnchanged: 5,
      bytesRead: 0,
      blobsAdded: 0,
    });

    const changed = path.join(source, 'prompts/ghibli.yaml');
    await writeFile(changed, 'name: ghibli\ntemplate: "y"\n');
    await utimes(changed, 1_700_000_000, 1_700_000_000);
    const third = await t.repo.storeDirectory(source, { parentTree: second.treeId });
    expect(third.treeId).not.toBe(first.treeId);
    expect(third.stats).toMatchObject({ filesNew: 0, filesChanged: 1, filesUnchanged: 4, bytesRead: 27 });
    // The changed file's blob plus the trees on its path (prompts/ and the root).
    expect(third.stats.blobsAdded).toBe(3);
  });

  it('storeFile: a small stream is one blob, a large one several; the same stream again adds nothing', async () => {
    t = await tempRepo();
    const small = await t.repo.storeFile(Readable.from([Buffer.from('tiny')]));
    expect(small).toMatchObject({ size: 4, blobsAdded: 1 });
    expect(small.chunks).toHaveLength(1);
    const data = randomBytes(20 * SMALL_CHUNKS.avgSize);
    const large = await t.repo.storeFile(Readable.from([data]), { compress: false });
    expect(large.chunks.length).toBeGreaterThan(5);
    const parts = await Promise.all(large.chunks.map((id) => t.repo.getBlob(id)));
    expect(digest(Buffer.concat(parts))).toBe(digest(data));
    expect(await t.repo.storeFile(Readable.from([data]))).toMatchObject({ blobsAdded: 0, bytesAdded: 0 });
  });
});

describe('restoreTree', () => {
  it('I7: restores byte-identical content with modes, mtimes, empty files, nested dirs and symlinks', async () => {
    t = await tempRepo({ encrypted: true });
    const source = path.join(t.work, 'source');
    await makeSource(source);
    const { treeId } = await t.repo.storeDirectory(source);
    const target = path.join(t.work, 'restored');
    const progress: string[] = [];
    const result = await t.repo.restoreTree(treeId, target, {
      concurrency: 3,
      onProgress: (p) => progress.push(p.path),
    });
    expect(result).toMatchObject({ files: 5, dirs: 5, symlinks: 2 });
    expect(progress.sort()).toEqual([
      'dump.sql',
      'objects/ab/cd/image.png',
      'prompts/empty.yaml',
      'prompts/ghibli.yaml',
      'script.sh',
    ]);
    expect(await snapshotOf(target)).toEqual(await snapshotOf(source));
    expect((await readdir(target)).filter((name) => name.includes('trendgen-restore'))).toEqual([]);
  });

  it('a scratch restore (durable: false) writes the same bytes and fsyncs nothing; the default fsyncs', async () => {
    t = await tempRepo();
    const source = path.join(t.work, 'source');
    await makeSource(source);
    const { treeId } = await t.repo.storeDirectory(source);
    const probe = await open(path.join(source, 'dump.sql'), 'r');
    const handlePrototype = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const sync = vi.spyOn(handlePrototype, 'sync');
    try {
      const scratch = path.join(t.work, 'scratch');
      await t.repo.restoreTree(treeId, scratch, { durable: false });
      expect(sync).not.toHaveBeenCalled();
      expect(await snapshotOf(scratch)).toEqual(await snapshotOf(source));
      await t.repo.restoreTree(treeId, path.join(t.work, 'durable'));
      // Every file and every folder.
      expect(sync.mock.calls.length).toBeGreaterThanOrEqual(10);
    } finally {
      sync.mockRestore();
    }
  });

  it('I7: a damaged chunk leaves its file out and names it; every other file is restored', async () => {
    const { treeId, dumpEntry } = await storedSample();
    const bad = dumpEntry.chunks![2]!;
    await flipByte(blobFile(t.root, bad));
    const target = path.join(t.work, 'restored');
    const error = await t.repo.restoreTree(treeId, target).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RestoreIncompleteError);
    expect((error as RestoreIncompleteError).damaged).toEqual([
      { path: 'dump.sql', blobId: bad, reason: `blob ${bad} is damaged` },
    ]);
    expect((error as Error).message).toContain('dump.sql');
    await expect(stat(path.join(target, 'dump.sql'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(path.join(target, 'prompts/ghibli.yaml'), 'utf8')).toContain('ghibli');
    expect((await readdir(target)).filter((name) => name.includes('trendgen-restore'))).toEqual([]);
  });
});

/** A new repository holding the sample folder: its tree and the entry of its multi-chunk `dump.sql`. */
async function storedSample(): Promise<{ source: string; treeId: string; dumpEntry: TreeEntry }> {
  t = await tempRepo();
  const source = path.join(t.work, 'source');
  await makeSource(source);
  const { treeId } = await t.repo.storeDirectory(source);
  const dumpEntry = (await t.repo.readTree(treeId)).entries.find((e) => e.name === 'dump.sql')!;
  return { source, treeId, dumpEntry };
}

describe('fileContents (a file read without writing it out)', () => {
  it('I7: yields the file byte for byte; a damaged chunk or a wrong size throws as restoreTree names it', async () => {
    const { source, dumpEntry } = await storedSample();
    expect(dumpEntry.chunks!.length).toBeGreaterThan(3);
    const read = async (entry: TreeEntry) => {
      const parts: Buffer[] = [];
      for await (const part of fileContents(t.repo, entry, 'postgres/dump.sql')) parts.push(part);
      return Buffer.concat(parts);
    };
    expect(digest(await read(dumpEntry))).toBe(digest(await readFile(path.join(source, 'dump.sql'))));

    const short = await read({ ...dumpEntry, size: dumpEntry.size + 1 }).catch((e: unknown) => e);
    expect(short).toBeInstanceOf(RestoreIncompleteError);
    expect((short as Error).message).toContain(
      `${dumpEntry.size} bytes instead of the recorded ${dumpEntry.size + 1}`,
    );

    const bad = dumpEntry.chunks![2]!;
    await flipByte(blobFile(t.root, bad));
    const damaged = await read(dumpEntry).catch((e: unknown) => e);
    expect(damaged).toBeInstanceOf(RestoreIncompleteError);
    expect((damaged as RestoreIncompleteError).damaged).toEqual([
      { path: 'postgres/dump.sql', blobId: bad, reason: `blob ${bad} is damaged` },
    ]);
  });
});

describe('restoreTree refuses hostile trees (nothing written outside the target)', () => {
  const entry = (name: string, extra: Partial<TreeEntry>): TreeEntry =>
    ({ name, type: 'file', mode: 0o644, mtimeMs: 0, size: 0, chunks: [], ...extra }) as TreeEntry;

  async function forgeTree(entries: unknown[]): Promise<string> {
    return (await t.repo.putBlob('tree', Buffer.from(JSON.stringify({ entries })))).id;
  }

  it('entries named .. or a/b are refused before anything is written', async () => {
    t = await tempRepo();
    const payload = (await t.repo.putBlob('data', Buffer.from('owned'))).id;
    const target = path.join(t.work, 'deep/target');
    await mkdir(target, { recursive: true });
    for (const name of ['..', 'a/b', '../../escape']) {
      const root = await forgeTree([entry(name, { size: 5, chunks: [payload] })]);
      await expect(t.repo.restoreTree(root, target)).rejects.toBeInstanceOf(InvalidTreeError);
    }
    // A hostile subtree below an honest root is refused by path, and its siblings still restore.
    const hostile = await forgeTree([entry('..', { size: 5, chunks: [payload] })]);
    const root = await t.repo.writeTree([
      { name: 'sub', type: 'dir', mode: 0o755, mtimeMs: 0, size: 0, subtree: hostile },
      entry('fine.txt', { size: 5, chunks: [payload] }),
    ]);
    const error = (await t.repo.restoreTree(root, target).catch((e: unknown) => e)) as RestoreIncompleteError;
    expect(error).toBeInstanceOf(RestoreIncompleteError);
    expect(error.refused.map((r) => r.path)).toEqual(['sub/']);
    expect(error.refused[0]!.reason).toMatch(/unsafe entry name/);
    expect((await walk(t.work)).filter((p) => !p.startsWith('repo'))).toEqual([
      'deep',
      'deep/target',
      'deep/target/fine.txt',
    ]);
  });

  it('symlinks leading outside (absolute, ../.., through another link) are refused; inside ones are made', async () => {
    t = await tempRepo();
    const target = path.join(t.work, 'target');
    const link = (name: string, to: string): TreeEntry => ({
      name,
      type: 'symlink',
      mode: 0o777,
      mtimeMs: 0,
      size: 0,
      target: to,
    });
    const sub = await t.repo.writeTree([link('up', '..'), link('upup', '../..'), link('self', '.')]);
    const root = await t.repo.writeTree([
      link('passwd', '/etc/passwd'),
      link('escape', '../../x'),
      link('through', 'd/self/../..'),
      link('inside', 'd/up'),
      { name: 'd', type: 'dir', mode: 0o755, mtimeMs: 0, size: 0, subtree: sub },
    ]);
    const before = await walk(t.work);
    const error = (await t.repo.restoreTree(root, target).catch((e: unknown) => e)) as RestoreIncompleteError;
    expect(error).toBeInstanceOf(RestoreIncompleteError);
    expect(error.refused.map((r) => r.path).sort()).toEqual(['d/upup', 'escape', 'passwd', 'through']);
    expect(await readlink(path.join(target, 'inside'))).toBe('d/up');
    expect(await readlink(path.join(target, 'd/up'))).toBe('..');
    expect(await readlink(path.join(target, 'd/self'))).toBe('.');
    for (const name of ['passwd', 'escape', 'through']) {
      await expect(lstat(path.join(target, name))).rejects.toMatchObject({ code: 'ENOENT' });
    }
    const after = (await walk(t.work)).filter((p) => !p.startsWith('target'));
    expect(after).toEqual(before.filter((p) => !p.startsWith('target')));
  });

  it('an existing symlink in the target is never written through', async () => {
    t = await tempRepo();
    const target = path.join(t.work, 'target');
    const outside = path.join(t.work, 'outside');
    await mkdir(target);
    await mkdir(outside);
    await symlink(outside, path.join(target, 'sub'));
    await symlink(path.join(outside, 'victim'), path.join(target, 'victim'));
    const payload = (await t.repo.putBlob('data', Buffer.from('owned'))).id;
    const inner = await t.repo.writeTree([entry('file', { size: 5, chunks: [payload] })]);
    const root = await t.repo.writeTree([
      { name: 'sub', type: 'dir', mode: 0o755, mtimeMs: 0, size: 0, subtree: inner },
      entry('victim', { size: 5, chunks: [payload] }),
    ]);
    const error = (await t.repo.restoreTree(root, target).catch((e: unknown) => e)) as RestoreIncompleteError;
    expect(error.refused).toEqual([
      { path: 'sub/', reason: 'something other than a directory is in the way' },
    ]);
    expect(await readdir(outside)).toEqual([]);
    // The file replaced the link itself rather than following it.
    expect((await lstat(path.join(target, 'victim'))).isFile()).toBe(true);
  });

  it('setuid and setgid bits are not restored', async () => {
    t = await tempRepo();
    const payload = (await t.repo.putBlob('data', Buffer.from('#!/bin/sh\n'))).id;
    const root = await t.repo.writeTree([entry('suid', { mode: 0o6755, size: 10, chunks: [payload] })]);
    const target = path.join(t.work, 'target');
    await t.repo.restoreTree(root, target);
    expect((await stat(path.join(target, 'suid'))).mode & 0o7777).toBe(0o755);
  });

  it('linkStaysInside judges targets lexically, allowing .. only as leading segments', () => {
    const root = '/r';
    const cases: [string, string, boolean][] = [
      ['/r', 'a', true],
      ['/r/a', '../b', true],
      ['/r/a/b', '../../c/d', true],
      ['/r', '..', false],
      ['/r/a', '../..', false],
      ['/r', '/etc/passwd', false],
      ['/r', '/r/a', true],
      ['/r', '/r/a/../../x', false],
      ['/r', 'a/../b', false],
      ['/r', './a//b/.', true],
      ['/r', '.', true],
    ];
    for (const [dir, to, ok] of cases) expect(linkStaysInside(root, dir, to), `${dir} -> ${to}`).toBe(ok);
  });
});
