import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BlobNotFoundError,
  BlobStoreError,
  createBlobStore,
  FileBlobStore,
  type S3BlobStore,
} from '../../src/blobstore/index.ts';
import type { S3Settings } from '../../src/config/config.ts';
import { syncFileSystem } from '../../src/lib/files.ts';
import { blobStoreContract, failingStream, INVALID_KEYS, keysOf, randomStream, readAll } from './contract.ts';

const NO_S3: S3Settings = {
  endpoint: undefined,
  region: 'us-east-1',
  forcePathStyle: true,
  accessKeyId: undefined,
  secretAccessKey: undefined,
};

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'trendgen-blobstore-'));
}

/** Files under `dir`, relative, recursively: what a crash would leave behind. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

blobStoreContract('file', async () => {
  const dir = await tempDir();
  // Through createBlobStore, so the URL parsing is exercised by every case.
  const store = createBlobStore(pathToFileURL(path.join(dir, 'store')).href, NO_S3);
  return { store, dispose: () => rm(dir, { recursive: true, force: true }) };
});

describe('FileBlobStore', () => {
  let dir: string;
  let root: string;
  let store: FileBlobStore;
  beforeEach(async () => {
    dir = await tempDir();
    root = path.join(dir, 'store');
    store = new FileBlobStore(root);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('I1: no temp files remain after successful writes', async () => {
    await store.put('a/b/c', Buffer.from('1'));
    await store.put('a/b/c', randomStream(3 * 1024 * 1024).stream);
    expect(await store.putIfAbsent('a/d', Buffer.from('2'))).toBe(true);
    expect(await store.putIfAbsent('a/d', Buffer.from('3'))).toBe(false);
    await store.delete('a/b/c');
    expect(await readdir(path.join(root, '.tmp'))).toEqual([]);
    expect(await filesUnder(root)).toEqual(['a/d']);
  });

  it('getBytes reads a blob whole; a missing key or a folder of keys is not found', async () => {
    const bytes = randomBytes(300_000);
    await store.put('a/b', bytes);
    expect((await store.getBytes('a/b')).equals(bytes)).toBe(true);
    expect((await store.getBytes('a/b')).equals(await readAll(await store.get('a/b')))).toBe(true);
    await store.put('empty', Buffer.alloc(0));
    expect((await store.getBytes('empty')).length).toBe(0);
    await expect(store.getBytes('a/missing')).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.getBytes('a')).rejects.toBeInstanceOf(BlobNotFoundError);
  });

  it('a write made without durability is whole in place, and flush makes it durable or says why not', async () => {
    await store.put('restored/x', Buffer.from('bytes'), { durable: false });
    await store.flush();
    expect((await readFile(path.join(root, 'restored', 'x'))).toString()).toBe('bytes');
    await expect(syncFileSystem(path.join(dir, 'no-such-folder'))).rejects.toThrow(
      /Could not flush the file system under .*: check the disk/,
    );
  });

  it('a write without durability replaces a blob whole, refuses a wrong size, and outlives its folders being removed', async () => {
    await store.put('restored/a/x', Buffer.from('old'), { durable: false });
    await store.put('restored/a/x', Buffer.from('new bytes'), { durable: false, size: 9 });
    expect(await readFile(path.join(root, 'restored/a/x'), 'utf8')).toBe('new bytes');
    await expect(store.put('restored/a/y', Buffer.from('abc'), { durable: false, size: 4 })).rejects.toThrow(
      BlobStoreError,
    );
    // A restore wiping the store behind it: the folders (the temp folder too) are made again.
    await rm(root, { recursive: true, force: true });
    await store.put('restored/b/z', Buffer.from('z'), { durable: false });
    expect(await filesUnder(root)).toEqual(['restored/b/z']);
    expect(await readdir(path.join(root, '.tmp'))).toEqual([]);
  });

  it('flushing a store whose folder was never created has nothing to do', async () => {
    await rm(dir, { recursive: true, force: true });
    await expect(store.flush()).resolves.toBeUndefined();
  });

  it('I1: a failed stream leaves no partial file under the final name and no temp file', async () => {
    await store.put('keep/old', Buffer.from('old'));
    const gone = new Error('aborted');
    await expect(store.put('keep/old', failingStream(5 * 1024 * 1024, gone))).rejects.toBe(gone);
    await expect(store.put('keep/new', failingStream(5 * 1024 * 1024, gone))).rejects.toBe(gone);
    await expect(store.putIfAbsent('keep/ia', failingStream(1024, gone))).rejects.toBe(gone);
    expect(await filesUnder(root)).toEqual(['keep/old']);
    expect(await readFile(path.join(root, 'keep/old'), 'utf8')).toBe('old');
  });

  it('I2: putIfAbsent racing 10 writers of one key yields exactly one true', async () => {
    const bodies = Array.from({ length: 10 }, (_, i) => Buffer.alloc(256 * 1024, i));
    const results = await Promise.all(bodies.map((body) => store.putIfAbsent('race/key', body)));
    expect(results.filter(Boolean).length).toBe(1);
    const winner = bodies[results.indexOf(true)]!;
    expect((await readAll(await store.get('race/key'))).equals(winner)).toBe(true);
    expect(await readdir(path.join(root, '.tmp'))).toEqual([]);
  });

  it('keys stay inside the root: invalid keys create nothing anywhere', async () => {
    for (const key of INVALID_KEYS) await store.put(key, Buffer.from('x')).catch(() => {});
    expect(await filesUnder(dir)).toEqual([]);
    expect(existsSync('/abs')).toBe(false);
  });

  it('list skips temp files and entries that are not keys', async () => {
    await store.put('x/real', Buffer.from('1'));
    await writeFile(path.join(root, '.tmp', 'pending.tmp'), 'partial');
    await writeFile(path.join(root, 'x', 'not a key'), '?');
    expect(await keysOf(store.list())).toEqual(['x/real']);
  });

  it('a key that is also a folder of keys gives one plain sentence', async () => {
    await store.put('a/b', Buffer.from('1'));
    await expect(store.put('a', Buffer.from('2'))).rejects.toThrow(
      /^The key a clashes with another blob in file:\/\/.*: a key cannot be both a blob and a folder of blobs\.$/,
    );
    await expect(store.put('a/b/c', Buffer.from('3'))).rejects.toBeInstanceOf(BlobStoreError);
    expect(await store.head('a')).toBeUndefined();
    expect(await keysOf(store.list())).toEqual(['a/b']);
  });

  it('I1: a write succeeds after its directories were removed behind the store', async () => {
    await store.put('p/q/r', Buffer.from('1'));
    await rm(path.join(root, 'p'), { recursive: true });
    await store.put('p/q/s', Buffer.from('2'));
    expect(await keysOf(store.list())).toEqual(['p/q/s']);
    await rm(root, { recursive: true });
    expect(await store.putIfAbsent('p/q/t', Buffer.from('3'))).toBe(true);
    expect(await keysOf(store.list())).toEqual(['p/q/t']);
  });

  it('cleanTemp removes only temp files older than an hour', async () => {
    await store.put('warm', Buffer.from('up'));
    const old = path.join(root, '.tmp', 'old.tmp');
    await writeFile(old, 'left by a crash');
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(old, twoHoursAgo, twoHoursAgo);
    await writeFile(path.join(root, '.tmp', 'fresh.tmp'), 'being written');
    expect(await store.cleanTemp()).toBe(1);
    expect(await readdir(path.join(root, '.tmp'))).toEqual(['fresh.tmp']);
  });

  it('I10: a full disk gives one plain sentence and leaves nothing behind', async (context) => {
    const mnt = path.join(dir, 'tiny');
    await mkdir(mnt);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { stdio: 'ignore' });
    } catch {
      context.skip('mounting a 1 MiB tmpfs is not allowed here');
    }
    try {
      const full = new FileBlobStore(path.join(mnt, 'objects'));
      const error = await full.put('big', randomStream(2 * 1024 * 1024).stream).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BlobStoreError);
      // The sentence names the one variable that put this store on the full disk.
      expect((error as Error).message).toBe(
        `The disk under ${path.join(mnt, 'objects')} is full: free space or move STORAGE_URL elsewhere.`,
      );
      const backups = new FileBlobStore(path.join(mnt, 'backups'), { setting: 'BACKUP_DIR' });
      const again = await backups.put('big', randomStream(2 * 1024 * 1024).stream).catch((e: unknown) => e);
      expect((again as Error).message).toBe(
        `The disk under ${path.join(mnt, 'backups')} is full: free space or move BACKUP_DIR elsewhere.`,
      );
      expect(await filesUnder(mnt)).toEqual([]);
      await full.put('small', Buffer.from('still fits'));
      expect(await keysOf(full.list())).toEqual(['small']);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it.skipIf(process.getuid?.() === 0)('I10: permission denied names the path', async () => {
    await mkdir(root, { recursive: true, mode: 0o500 });
    const error = await store.put('x', Buffer.from('1')).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(
      /^Permission denied on .*store.*: let the user running trendgen/,
    );
  });
});

describe('createBlobStore', () => {
  it('resolves file:// URLs, absolute and relative', () => {
    const absolute = createBlobStore('file:///var/lib/trendgen/objects', NO_S3) as FileBlobStore;
    expect(absolute.root).toBe('/var/lib/trendgen/objects');
    const relative = createBlobStore('file://data/objects', NO_S3) as FileBlobStore;
    expect(relative.root).toBe(path.resolve('data/objects'));
    expect(relative.location).toBe(pathToFileURL(path.resolve('data/objects')).href);
  });

  it('parses s3:// URLs into bucket and prefix', () => {
    const store = createBlobStore('s3://my-bucket/backups/trendgen/', NO_S3) as S3BlobStore;
    expect([store.bucket, store.prefix, store.location]).toEqual([
      'my-bucket',
      'backups/trendgen/',
      's3://my-bucket/backups/trendgen',
    ]);
    expect((createBlobStore('s3://bare', NO_S3) as S3BlobStore).prefix).toBe('');
  });

  it('refuses other URLs with one sentence and no credentials', () => {
    expect(() => createBlobStore('ftp://user:hunter2@host/x', NO_S3)).toThrow(
      'The storage URL ftp://***@host/x is not supported: use file:///absolute/dir, file://relative/dir or s3://bucket/prefix.',
    );
    expect(() => createBlobStore('s3://bkt/../x', NO_S3)).toThrow(/prefix must be folders/);
    expect(() => createBlobStore('file://', NO_S3)).toThrow(/names no directory/);
  });
});
