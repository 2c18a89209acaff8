import { randomBytes } from 'node:crypto';
import { type FileHandle, link, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { fsyncDir, placeFileSync, readFileUpTo, removeStaleFiles, syncFileSystem } from '../lib/files.ts';
import {
  assertValidKey,
  assertValidRange,
  type BlobInfo,
  BlobNotFoundError,
  type BlobStore,
  BlobStoreError,
  checkBodySize,
  discardBody,
  InvalidKeyError,
  type PutOptions,
  rangeBeyondEnd,
} from './blobstore.ts';
import { DescriptorCache, writeAll } from './file-descriptors.ts';
import { DeferredEntries } from './file-entries.ts';
import { fsSentence, isMissing, isNotABlob } from './file-errors.ts';
import { listBlobs, statBlob } from './file-listing.ts';

const TEMP_DIR = '.tmp';
const STALE_TEMP_MS = 60 * 60 * 1000;

/**
 * Blobs as files under one root. Every write goes to `<root>/.tmp/` first (same filesystem), is
 * fsynced, then renamed (put) or hard-linked (putIfAbsent) into place, and the directory is fsynced:
 * a reader sees the whole blob or nothing, and a resolved write survives a power loss (I1, I2) — except a
 * write asked `durable: false` (a restore), which skips both fsyncs and is durable once `flush()` resolved, and
 * one asked `durable: 'contents'` (a pack), whose directory is fsynced at `syncEntries()`.
 */
export class FileBlobStore implements BlobStore {
  readonly root: string;
  readonly location: string;
  private readonly tempDir: string;
  private ready: Promise<void> | undefined;
  /** Directories whose entry in their parent this process has made durable, so it fsyncs each once. */
  private readonly durableDirs = new Map<string, Promise<void>>();
  private readonly descriptors = new DescriptorCache();
  private readonly deferredEntries = new DeferredEntries();

  /** The variable that put the store here (STORAGE_URL, BACKUP_DIR): a full disk's sentence names it. */
  private readonly setting: string;

  constructor(root: string, options: { setting?: string } = {}) {
    this.setting = options.setting ?? 'STORAGE_URL';
    this.root = path.resolve(root);
    this.location = pathToFileURL(this.root).href;
    this.tempDir = path.join(this.root, TEMP_DIR);
  }

  async put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<void> {
    const target = this.pathOf(key);
    if (
      Buffer.isBuffer(body) &&
      options?.durable === false &&
      (await this.placeDeferred(key, target, body, options))
    )
      return;
    const temp = await this.writeTemp(key, body, options);
    try {
      await this.intoPlace(target, () => rename(temp, target), options?.durable ?? true);
    } catch (error) {
      await unlink(temp).catch(() => {});
      throw this.fail(error, key);
    } finally {
      // Even after a failure: the rename may have happened, and a cached descriptor reads the old file.
      await this.descriptors.evict(key);
    }
  }

  /**
   * A write that is durable only at `flush()` is a batch job's (a restore's, which serves nothing meanwhile): it is
   * written with blocking calls, because the five thread-pool round trips of an asynchronous write cost the main
   * thread more than writing a small file does. False when a directory vanished: the caller takes the slow path.
   */
  private async placeDeferred(
    key: string,
    target: string,
    body: Buffer,
    options: PutOptions,
  ): Promise<boolean> {
    checkBodySize(key, body.length, options.size);
    try {
      await this.init();
      await this.ensureDir(path.dirname(target));
      // Where nothing is yet (a restore into an empty store), created in place: one directory entry, not two.
      // A killed restore may leave it cut short; the store stays marked until a rerun replaces it (its hash
      // is checked) or --accept-partial treats a wrong size as missing.
      if (placeFileSync(undefined, target, body)) return true;
      placeFileSync(path.join(this.tempDir, `${randomBytes(12).toString('hex')}.tmp`), target, body);
      return true;
    } catch (error) {
      if (isMissing(error)) {
        this.forget();
        return false;
      }
      throw this.fail(error, key);
    } finally {
      await this.descriptors.evict(key);
    }
  }

  async putIfAbsent(key: string, body: Readable | Buffer, options?: PutOptions): Promise<boolean> {
    const target = this.pathOf(key);
    if (await this.head(key)) {
      await discardBody(body);
      return false;
    }
    const temp = await this.writeTemp(key, body, options);
    try {
      // link() fails with EEXIST instead of replacing: the check and the write are one atomic step.
      await this.intoPlace(target, () => link(temp, target), options?.durable ?? true);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw this.fail(error, key);
    } finally {
      await unlink(temp).catch(() => {});
      // The key was absent, but a descriptor may be cached from before its file was removed behind the store.
      await this.descriptors.evict(key);
    }
  }

  async get(key: string): Promise<Readable> {
    const target = this.pathOf(key);
    let handle: FileHandle;
    try {
      handle = await open(target, 'r');
    } catch (error) {
      if (isMissing(error)) throw new BlobNotFoundError(key, this.location);
      throw this.fail(error, key);
    }
    // open() succeeds on a directory, which is a prefix of other keys, not a blob.
    if (!(await handle.stat()).isFile()) {
      await handle.close();
      throw new BlobNotFoundError(key, this.location);
    }
    return handle.createReadStream();
  }

  /** A blob whole, with one open and no stream: a third of get's CPU for a small blob. */
  async getBytes(key: string): Promise<Buffer> {
    return (await this.getIfSmall(key, Number.POSITIVE_INFINITY))!;
  }

  localPath(key: string): string {
    return this.pathOf(key);
  }

  /** A small blob whole with one open and no stream; undefined for a larger one (read it with `get`). */
  async getIfSmall(key: string, maxBytes: number): Promise<Buffer | undefined> {
    try {
      return await readFileUpTo(this.pathOf(key), maxBytes);
    } catch (error) {
      if (isNotABlob(error)) throw new BlobNotFoundError(key, this.location);
      throw this.fail(error, key);
    }
  }

  /** Ranges of one pack share a cached descriptor: each costs one positional read, not an open and a close. */
  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    const file = this.pathOf(key);
    assertValidRange(offset, length);
    const bytes = await this.descriptors.read(key, file, offset, length).catch((error) => {
      throw isNotABlob(error) ? new BlobNotFoundError(key, this.location) : this.fail(error, key);
    });
    if (!bytes) throw rangeBeyondEnd(key, this.location, offset, length);
    return bytes;
  }

  async head(key: string): Promise<BlobInfo | undefined> {
    this.pathOf(key);
    return statBlob(this.root, key).catch((error) => {
      throw this.fail(error, key);
    });
  }

  async *list(prefix = ''): AsyncIterable<BlobInfo> {
    yield* listBlobs(this.root, prefix, (error, key) => this.fail(error, key));
  }

  async delete(key: string): Promise<void> {
    const target = this.pathOf(key);
    await this.descriptors.evict(key);
    try {
      await unlink(target);
    } catch (error) {
      if (!isNotABlob(error)) throw this.fail(error, key);
    }
    // Also when it was already gone: an earlier delete may have crashed before its directory fsync.
    try {
      await fsyncDir(path.dirname(target));
    } catch (error) {
      if (!isMissing(error)) throw this.fail(error, key);
    }
  }

  /** A store whose folder was never created holds nothing to flush (a restore of a snapshot without objects). */
  async flush(): Promise<void> {
    try {
      await stat(this.root);
    } catch (error) {
      if (isMissing(error)) return;
      throw this.fail(error, TEMP_DIR);
    }
    await syncFileSystem(this.root).catch((error) => {
      throw this.fail(error, TEMP_DIR);
    });
  }

  /** One fsync per directory that `durable: 'contents'` writes went into, instead of one per write. */
  syncEntries(): Promise<void> {
    return this.deferredEntries.sync();
  }

  /** Closes the cached read descriptors; the store stays usable and opens them again when read. */
  async close(): Promise<void> {
    await this.descriptors.closeAll();
  }

  /** Removes temp files left by crashed writers; returns how many it removed. */
  async cleanTemp(maxAgeMs = STALE_TEMP_MS): Promise<number> {
    return removeStaleFiles(this.tempDir, maxAgeMs, (error) => this.fail(error, TEMP_DIR));
  }

  private pathOf(key: string): string {
    assertValidKey(key);
    const target = path.resolve(this.root, ...key.split('/'));
    const base = this.root.endsWith(path.sep) ? this.root : this.root + path.sep;
    if (!target.startsWith(base)) {
      throw new InvalidKeyError(`Invalid blob key ${JSON.stringify(key)}: it resolves outside ${this.root}.`);
    }
    return target;
  }

  private init(): Promise<void> {
    this.ready ??= (async () => {
      const first = (await mkdir(this.root, { recursive: true })) ?? this.root;
      // Each directory from the root up to the first one created here is a new entry in its parent.
      for (let dir = this.root; ; dir = path.dirname(dir)) {
        await fsyncDir(path.dirname(dir));
        if (dir === first || dir === path.dirname(dir)) break;
      }
      await this.ensureDir(this.tempDir);
      // Best effort: a leftover temp file wastes space but never hides or corrupts a blob.
      await this.cleanTemp().catch(() => 0);
    })();
    this.ready.catch(() => {
      this.ready = undefined;
    });
    return this.ready;
  }

  /** Directories were removed behind our back (e.g. a restore wiped the store): recreate them. */
  private forget(): void {
    this.ready = undefined;
    this.durableDirs.clear();
    // Their files may be gone too; a cached descriptor would still read them.
    void this.descriptors.closeAll();
  }

  /** Creates `dir` and makes its entry durable in every ancestor up to the root. */
  private ensureDir(dir: string): Promise<void> {
    if (dir === this.root) return Promise.resolve();
    let pending = this.durableDirs.get(dir);
    if (!pending) {
      pending = (async () => {
        await this.ensureDir(path.dirname(dir));
        await mkdir(dir).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw error;
        });
        // Even when it existed: its creator (another process, or one that crashed) may not have fsynced.
        await fsyncDir(path.dirname(dir));
      })();
      this.durableDirs.set(dir, pending);
      pending.catch(() => this.durableDirs.delete(dir));
    }
    return pending;
  }

  /** Runs rename or link into `target`, then fsyncs its directory now, at `syncEntries` or at `flush`. */
  private async intoPlace(
    target: string,
    move: () => Promise<void>,
    durable: boolean | 'contents',
  ): Promise<void> {
    const dir = path.dirname(target);
    await this.ensureDir(dir);
    try {
      await move();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      this.forget();
      await this.ensureDir(dir);
      await move();
    }
    if (durable === 'contents') this.deferredEntries.add(dir);
    else if (durable) await fsyncDir(dir);
  }

  private async writeTemp(key: string, body: Readable | Buffer, options?: PutOptions): Promise<string> {
    await this.init().catch((error) => {
      throw this.fail(error, key);
    });
    const temp = path.join(this.tempDir, `${randomBytes(12).toString('hex')}.tmp`);
    let bodyError: unknown;
    if (!Buffer.isBuffer(body)) body.once('error', (error) => (bodyError ??= error));
    let handle: FileHandle | undefined;
    try {
      handle = await open(temp, 'wx', 0o644).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
        this.forget();
        await this.init();
        return open(temp, 'wx', 0o644);
      });
      let written = 0;
      if (Buffer.isBuffer(body)) {
        written = await writeAll(handle, body);
      } else {
        for await (const chunk of body) {
          written += await writeAll(handle, typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
        }
      }
      checkBodySize(key, written, options?.size);
      if (options?.durable !== false) await handle.sync();
      await handle.close();
      handle = undefined;
      return temp;
    } catch (error) {
      await handle?.close().catch(() => {});
      await unlink(temp).catch(() => {});
      // The body's own failure (a client that went away) belongs to the caller, unchanged.
      throw error === bodyError ? error : this.fail(error, key);
    }
  }

  /** Turns a filesystem error into one plain sentence that says what to do. */
  private fail(error: unknown, key: string): Error {
    if (error instanceof BlobStoreError) return error;
    const sentence = fsSentence(error as NodeJS.ErrnoException, key, this.root, this.location, this.setting);
    if (sentence) return new BlobStoreError(sentence, { cause: error });
    return error instanceof Error ? error : new Error(String(error));
  }
}
