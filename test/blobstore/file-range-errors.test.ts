import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BlobStoreError, FileBlobStore } from '../../src/blobstore/index.ts';

/** While `error` is set, positional reads fail with it, as a failing disk's would; `opens` counts opens. */
const failing = vi.hoisted(() => ({ error: undefined as NodeJS.ErrnoException | undefined, opens: 0 }));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const read = ((...args: unknown[]) => {
    const callback = args.at(-1) as (error: Error | null, bytes?: number) => void;
    if (failing.error) return process.nextTick(callback, failing.error);
    return (real.read as (...a: unknown[]) => void)(...args);
  }) as typeof real.read;
  const open = ((...args: unknown[]) => {
    failing.opens++;
    return (real.open as (...a: unknown[]) => void)(...args);
  }) as typeof real.open;
  return { ...real, default: { ...real, open, read }, open, read };
});

describe('FileBlobStore getRange on a failing disk', () => {
  let dir: string;
  let store: FileBlobStore;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'trendgen-blobstore-eio-'));
    store = new FileBlobStore(path.join(dir, 'store'));
  });
  afterEach(async () => {
    failing.error = undefined;
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("an I/O error is the store's sentence, and a later read opens the blob again", async () => {
    const pack = randomBytes(10_000);
    await store.put('packs/p', pack);
    expect((await store.getRange('packs/p', 10, 10)).equals(pack.subarray(10, 20))).toBe(true);
    failing.error = Object.assign(new Error('EIO: i/o error, read'), {
      code: 'EIO',
      syscall: 'read',
      errno: -5,
    });
    const error = await store.getRange('packs/p', 100, 10).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BlobStoreError);
    expect((error as Error).message).toBe(
      `Could not access packs/p in ${store.location}: EIO: i/o error, read.`,
    );
    expect((error as Error).cause).toBe(failing.error);
    failing.error = undefined;
    const opens = failing.opens;
    expect((await store.getRange('packs/p', 100, 10)).equals(pack.subarray(100, 110))).toBe(true);
    expect((await store.getRange('packs/p', 200, 10)).equals(pack.subarray(200, 210))).toBe(true);
    // The descriptor that failed was dropped: one fresh open, then cached again.
    expect(failing.opens).toBe(opens + 1);
  });
});
