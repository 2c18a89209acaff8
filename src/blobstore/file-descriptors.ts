import { close, fstat, open, read, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

const CAPACITY = 8;
// Linux reads at most 0x7ffff000 bytes per call; asking for less keeps every call's length an int32.
const MAX_READ = 1 << 30;

interface Descriptor {
  fd: number;
  size: number;
}

interface Entry {
  ready: Promise<Descriptor>;
  /** Reads in flight on it: an evicted descriptor is closed only once they are done. */
  users: number;
  evicted: boolean;
  closed: boolean;
}

/**
 * Read-only descriptors of the blobs read most recently, so that reading many ranges of one pack costs one
 * positional read each instead of an open, a read and a close. Only for immutable files (a temp file renamed
 * into place): a cached descriptor keeps reading the file it was opened on, so whoever replaces or removes a
 * key evicts it. Positional reads share no file offset, so concurrent reads of one key share one descriptor.
 */
export class DescriptorCache {
  /** In order of last use, oldest first. */
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly capacity = CAPACITY) {}

  /**
   * The `length` bytes of `file` at `offset`; undefined when the file ends before them. Rejects with the
   * file system's error (EISDIR when `file` is not a regular file).
   */
  async read(key: string, file: string, offset: number, length: number): Promise<Buffer | undefined> {
    const entry = this.acquire(key, file);
    try {
      const { fd, size } = await entry.ready;
      if (length === 0) return Buffer.alloc(0);
      // Checked before allocating: a length from a damaged pack index must not cost gigabytes of memory.
      if (offset + length > size) return undefined;
      const bytes = Buffer.allocUnsafe(length);
      try {
        return (await readAt(fd, bytes, offset)) === length ? bytes : undefined;
      } catch (error) {
        // A descriptor that failed once (EIO, ESTALE) may keep failing where a fresh open would not.
        if (this.entries.get(key) === entry) void this.evict(key);
        throw error;
      }
    } finally {
      entry.users--;
      if (entry.evicted) void this.closeIdle(entry);
    }
  }

  /** Closes the key's descriptor, or lets its last read in flight close it. */
  async evict(key: string): Promise<void> {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    entry.evicted = true;
    await this.closeIdle(entry);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.entries.keys()].map((key) => this.evict(key)));
  }

  /** The key's entry, counted as in use before anything awaits, so that no eviction can close it under a read. */
  private acquire(key: string, file: string): Entry {
    let entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
    } else {
      const created: Entry = { ready: openFile(file), users: 0, evicted: false, closed: false };
      // A failed open is not cached: the blob may be written a moment later.
      created.ready.catch(() => {
        if (this.entries.get(key) === created) this.entries.delete(key);
        created.evicted = true;
      });
      entry = created;
    }
    this.entries.set(key, entry);
    entry.users++;
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.capacity) break;
      void this.evict(oldest);
    }
    return entry;
  }

  /** Closing under a read in flight would let the kernel reuse the number for another file mid-read. */
  private async closeIdle(entry: Entry): Promise<void> {
    if (entry.users > 0 || entry.closed) return;
    entry.closed = true;
    const descriptor = await entry.ready.catch(() => undefined);
    // Closing a read-only descriptor loses nothing, so its failure is not the caller's.
    if (descriptor) await new Promise((resolve) => close(descriptor.fd, resolve));
  }
}

async function openFile(file: string): Promise<Descriptor> {
  const fd = await new Promise<number>((resolve, reject) =>
    open(file, 'r', (error, fd) => (error ? reject(error) : resolve(fd))),
  );
  try {
    const stats = await new Promise<Stats>((resolve, reject) =>
      fstat(fd, (error, stats) => (error ? reject(error) : resolve(stats))),
    );
    // open() succeeds on a directory, which is a prefix of other keys, not a blob.
    if (!stats.isFile()) throw Object.assign(new Error(`${file} is not a file.`), { code: 'EISDIR' });
    return { fd, size: stats.size };
  } catch (error) {
    await new Promise((resolve) => close(fd, resolve));
    throw error;
  }
}

/** Fills `target` from `position` on; fewer bytes only at the end of the file. */
async function readAt(fd: number, target: Buffer, position: number): Promise<number> {
  let filled = 0;
  while (filled < target.length) {
    const length = Math.min(target.length - filled, MAX_READ);
    const bytes = await new Promise<number>((resolve, reject) =>
      read(fd, target, filled, length, position + filled, (error, bytes) =>
        error ? reject(error) : resolve(bytes),
      ),
    );
    if (bytes === 0) break;
    filled += bytes;
  }
  return filled;
}

/** Writes all of `data`: one write may take only part of it. */
export async function writeAll(handle: FileHandle, data: Uint8Array): Promise<number> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
  return data.length;
}
