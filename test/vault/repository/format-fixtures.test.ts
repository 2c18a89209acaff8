import { createHash } from 'node:crypto';
import { cp, lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/index.ts';
import {
  type OpenOptions,
  Repository,
  WrongKeyError,
  WrongPasswordError,
} from '../../../src/vault/repository/index.ts';
import { tempDir } from '../../support/temp.ts';

/**
 * Repositories written by a release before format 3 (test/fixtures/repository-formats, made by
 * scripts/make-repository-fixtures.ts with that release's code) must stay readable by the current code:
 * opened, listed, restored byte for byte with their modes and times, and checked clean.
 */
const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/repository-formats');

interface Expected {
  configVersion: number;
  encrypted: boolean;
  snapshot: { id: string; time: string; host: string; tags: string[]; source: string; tree: string };
  files: { path: string; size: number; mode: string; mtimeMs: number; sha256: string; chunks: number }[];
  dirs: { path: string; mode: string; mtimeMs: number }[];
  symlinks: { path: string; target: string; mtimeMs: number }[];
}

const CASES: { name: string; open: OpenOptions }[] = [
  { name: 'v1-encrypted', open: { password: 'fixture-password' } },
  {
    name: 'v2-authenticated',
    open: { authKey: createHash('sha256').update('trendgen-fixture-auth-key').digest() },
  },
];

let temp: { dir: string; remove(): void } | undefined;
afterEach(() => {
  temp?.remove();
  temp = undefined;
});

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

async function expectedOf(name: string): Promise<Expected> {
  return JSON.parse(await readFile(path.join(FIXTURES, name, 'expected.json'), 'utf8')) as Expected;
}

/** A copy of the fixture's repository: nothing the test does may change the committed files. */
async function copyOf(name: string): Promise<{ store: FileBlobStore; work: string }> {
  temp = tempDir('format-fixture');
  const root = path.join(temp.dir, 'repo');
  await cp(path.join(FIXTURES, name, 'repo'), root, { recursive: true });
  return { store: new FileBlobStore(root), work: temp.dir };
}

/** Every entry under dir, relative to it, sorted. */
async function entriesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    out.push(path.relative(dir, path.join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

describe.each(CASES)('the $name fixture, read by the current code', ({ name, open }) => {
  it('opens at its format version, lists its snapshot, restores every file as written, and checks clean', async () => {
    const expected = await expectedOf(name);
    const { store, work } = await copyOf(name);
    const repo = await Repository.open(store, open);
    expect(repo.config.version).toBe(expected.configVersion);
    expect(repo.encrypted).toBe(expected.encrypted);

    expect(await repo.listSnapshots()).toEqual([expected.snapshot.id]);
    const snapshot = await repo.loadSnapshot(expected.snapshot.id);
    expect(snapshot).toMatchObject({
      id: expected.snapshot.id,
      time: expected.snapshot.time,
      host: expected.snapshot.host,
      tags: expected.snapshot.tags,
      trees: { [expected.snapshot.source]: expected.snapshot.tree },
    });
    // The large file is really several chunks, so its restore reassembles them in order.
    expect(expected.files.find((file) => file.path === 'random.bin')?.chunks).toBeGreaterThanOrEqual(3);

    const target = path.join(work, 'restored');
    const result = await repo.restoreTree(snapshot.trees[expected.snapshot.source]!, target);
    expect(result).toMatchObject({
      files: expected.files.length,
      dirs: expected.dirs.length,
      symlinks: expected.symlinks.length,
    });
    expect(await entriesUnder(target)).toEqual(
      [...expected.files, ...expected.dirs, ...expected.symlinks].map((entry) => entry.path).sort(),
    );
    for (const file of expected.files) {
      const abs = path.join(target, file.path);
      const info = await lstat(abs);
      expect(info.isFile(), file.path).toBe(true);
      expect(
        {
          size: info.size,
          mode: info.mode & 0o7777,
          mtimeMs: info.mtimeMs,
          sha256: sha256(await readFile(abs)),
        },
        file.path,
      ).toEqual({
        size: file.size,
        mode: Number.parseInt(file.mode, 8),
        mtimeMs: file.mtimeMs,
        sha256: file.sha256,
      });
    }
    for (const dir of expected.dirs) {
      const info = await lstat(path.join(target, dir.path));
      expect(info.isDirectory(), dir.path).toBe(true);
      expect({ mode: info.mode & 0o7777, mtimeMs: info.mtimeMs }, dir.path).toEqual({
        mode: Number.parseInt(dir.mode, 8),
        mtimeMs: dir.mtimeMs,
      });
    }
    for (const link of expected.symlinks) {
      const abs = path.join(target, link.path);
      expect((await lstat(abs)).isSymbolicLink(), link.path).toBe(true);
      expect(await readlink(abs), link.path).toBe(link.target);
      expect((await lstat(abs)).mtimeMs, link.path).toBe(link.mtimeMs);
    }

    const report = await repo.check({ readData: true });
    expect(report).toMatchObject({
      ok: true,
      snapshots: 1,
      dataRead: true,
      damagedSnapshots: [],
      damagedBlobs: [],
      missingBlobs: [],
      unexpectedFiles: [],
    });
    expect(report.formatVersion).toBe(expected.configVersion);
  });

  it('stays at its version when backed up into: blobs as their own files, no pack a reader of its version misses', async () => {
    const expected = await expectedOf(name);
    const { store, work } = await copyOf(name);
    const repo = await Repository.open(store, open);
    repo.packBlobs();
    const stored = await repo.storeFile(
      (async function* () {
        yield Buffer.from(`new content for ${name}`);
      })(),
    );
    const tree = await repo.writeTree([
      { name: 'new.txt', type: 'file', mode: 0o600, mtimeMs: 0, size: stored.size, chunks: stored.chunks },
    ]);
    await repo.saveSnapshot({ time: new Date().toISOString(), host: 'h', tags: [], trees: { files: tree } });
    const root = path.join(work, 'repo');
    expect(await entriesUnder(root)).not.toContain('packs');
    expect(await entriesUnder(root)).not.toContain('index');
    const reopened = await Repository.open(new FileBlobStore(root), open);
    expect(reopened.config.version).toBe(expected.configVersion);
    expect(await reopened.check({ readData: true })).toMatchObject({ ok: true, snapshots: 2, packs: 0 });
  });
});

describe('the fixtures refuse the wrong secret as any repository does', () => {
  it('v1-encrypted: a wrong password is WrongPasswordError naming the repository', async () => {
    const { store } = await copyOf('v1-encrypted');
    const error = await Repository.open(store, { password: 'not-the-fixture-password' }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WrongPasswordError);
    expect((error as Error).message).toBe(
      `The backup password is wrong for the repository at ${store.location}: check BACKUP_PASSWORD.`,
    );
  });

  it('v2-authenticated: another key is WrongKeyError', async () => {
    const { store } = await copyOf('v2-authenticated');
    await expect(Repository.open(store, { authKey: Buffer.alloc(32, 7) })).rejects.toBeInstanceOf(
      WrongKeyError,
    );
  });
});
