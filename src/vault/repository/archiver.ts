import { constants, type Dirent } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { looksCompressed } from './compression.ts';
import { CorruptBlobError, InvalidTreeError, MissingBlobError } from './errors.ts';
import type { PutBlobResult, RepositoryHandle } from './handle.ts';
import { limiter } from './io.ts';
import { linkStaysInside } from './restorer.ts';
import { encodeTree, type TreeEntry } from './tree.ts';

const READ_BUFFER = 1024 * 1024;
const DEFAULT_INFLIGHT = 4;

export interface StoreFileOptions {
  /** false: the content is compressed already (skip zstd); undefined: decide by the first chunk's bytes. */
  compress?: boolean;
  /** Chunk uploads of this file in flight at once; each holds one chunk in memory. */
  inflight?: number;
}

export interface StoredFile {
  chunks: string[];
  /** The plaintext length of each chunk, in the order of `chunks`. */
  chunkSizes: number[];
  size: number;
  blobsAdded: number;
  bytesAdded: number;
}

/** Chunks a stream and stores every chunk; a stream shorter than the minimum chunk is one blob. */
export function storeFile(
  repo: RepositoryHandle,
  source: AsyncIterable<Uint8Array | string>,
  options: StoreFileOptions = {},
): Promise<StoredFile> {
  return storeChunks(repo, repo.chunker.chunkStream(source), options);
}

/**
 * storeFile for bytes already in memory: the chunks are views into `bytes`, never copied (a backup of many
 * small objects spent more in allocating a chunking window per object and collecting it than in hashing).
 */
export function storeBytes(
  repo: RepositoryHandle,
  bytes: Buffer,
  options: StoreFileOptions = {},
): Promise<StoredFile> {
  return storeChunks(repo, repo.chunker.chunkBuffer(bytes), options);
}

/**
 * Stores an object its store names by a hash of its content: as one blob when it fits in one (up to the chunker's
 * `maxSize`), else chunked like any file. Content-defined cuts have nothing to deduplicate there (two different
 * objects share no chunks; the same object has the same key), and the scan with its copies was a tenth of the
 * main thread's time in a first backup of 2 GB of images. The stream of objects and a snapshot's objects tree
 * both store through this, so each still finds the other's blobs.
 */
export async function storeObjectBytes(
  repo: RepositoryHandle,
  source: Buffer | AsyncIterable<Uint8Array>,
  options: StoreFileOptions = {},
): Promise<StoredFile> {
  const { maxSize } = repo.chunker;
  if (Buffer.isBuffer(source)) {
    if (source.length > maxSize) return storeBytes(repo, source, options);
    return storeChunks(repo, source.length ? [source] : [], options);
  }
  const iterator = source[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let length = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done) return storeChunks(repo, length ? [Buffer.concat(head, length)] : [], options);
    const piece = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    head.push(piece);
    length += piece.length;
    if (length > maxSize) break;
  }
  async function* whole(): AsyncGenerator<Uint8Array> {
    yield* head;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  return storeFile(repo, whole(), options);
}

/** Stores chunks already cut (by the chunker, or otherwise for a caller that knows better), in order. */
export async function storeChunks(
  repo: RepositoryHandle,
  chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
  options: StoreFileOptions,
): Promise<StoredFile> {
  const result: StoredFile = { chunks: [], chunkSizes: [], size: 0, blobsAdded: 0, bytesAdded: 0 };
  let compress = options.compress;
  const pending: { put: Promise<PutBlobResult>; size: number }[] = [];
  const settle = async () => {
    const next = pending.shift()!;
    const put = await next.put;
    result.chunks.push(put.id);
    result.chunkSizes.push(next.size);
    if (put.stored) {
      result.blobsAdded++;
      result.bytesAdded += put.storedSize;
    }
  };
  for await (const chunk of chunks) {
    // Later chunks of a JPEG carry no signature, so the first chunk decides for the whole file.
    if (result.size === 0 && compress === undefined && looksCompressed(chunk)) compress = false;
    result.size += chunk.length;
    const put = repo.putBlob('data', chunk, compress === undefined ? {} : { compress });
    // Awaited in order below; until then a failure must not count as unhandled and end the process.
    put.catch(() => {});
    pending.push({ put, size: chunk.length });
    if (pending.length >= (options.inflight ?? DEFAULT_INFLIGHT)) await settle();
  }
  while (pending.length > 0) await settle();
  return result;
}

export interface StoreStats {
  filesNew: number;
  filesChanged: number;
  /** Same size, mtime and inode as in the parent tree: chunks reused, file not read. */
  filesUnchanged: number;
  dirs: number;
  symlinks: number;
  /**
   * What a restore would refuse, so it is not stored (a backup holds only what its restore accepts):
   * sockets, devices and FIFOs, symlinks leading outside the folder, entries that vanished while read.
   */
  skipped: { path: string; reason: string }[];
  bytesRead: number;
  blobsAdded: number;
  bytesAdded: number;
}

export interface StoreDirectoryOptions {
  /** The tree of the same directory in the parent snapshot: unchanged files are not read again. */
  parentTree?: string;
  /** Files read and stored at once. */
  concurrency?: number;
  onProgress?: (stats: StoreStats, path: string) => void;
}

interface Walk {
  repo: RepositoryHandle;
  /** The folder being stored: symlinks must resolve inside it, as the restore requires. */
  root: string;
  limit: <T>(task: () => Promise<T>) => Promise<T>;
  stats: StoreStats;
  onProgress: ((stats: StoreStats, path: string) => void) | undefined;
}

/** Stores a directory tree (symlinks as links, never followed) and returns its root tree id. */
export async function storeDirectory(
  repo: RepositoryHandle,
  dir: string,
  options: StoreDirectoryOptions = {},
): Promise<{ treeId: string; stats: StoreStats }> {
  const stats: StoreStats = {
    filesNew: 0,
    filesChanged: 0,
    filesUnchanged: 0,
    dirs: 0,
    symlinks: 0,
    skipped: [],
    bytesRead: 0,
    blobsAdded: 0,
    bytesAdded: 0,
  };
  const root = path.resolve(dir);
  const walk: Walk = {
    repo,
    root,
    limit: limiter(options.concurrency ?? 4),
    stats,
    onProgress: options.onProgress,
  };
  const treeId = await storeDir(walk, root, '', options.parentTree);
  return { treeId, stats };
}

async function storeDir(
  walk: Walk,
  abs: string,
  rel: string,
  parentTree: string | undefined,
): Promise<string> {
  const parent = await parentEntries(walk.repo, parentTree);
  const dirents = await readdir(abs, { withFileTypes: true });
  const entries = await Promise.all(
    dirents.map((dirent) => storeEntry(walk, dirent, abs, rel, parent.get(dirent.name))),
  );
  const put = await walk.repo.putBlob(
    'tree',
    encodeTree(entries.filter((entry): entry is TreeEntry => entry !== undefined)),
  );
  count(walk.stats, put);
  return put.id;
}

async function storeEntry(
  walk: Walk,
  dirent: Dirent,
  dir: string,
  rel: string,
  old: TreeEntry | undefined,
): Promise<TreeEntry | undefined> {
  const { name } = dirent;
  const abs = path.join(dir, name);
  const relPath = rel ? `${rel}/${name}` : name;
  try {
    if (dirent.isDirectory()) {
      const info = await lstat(abs);
      const subtree = await storeDir(walk, abs, relPath, old?.type === 'dir' ? old.subtree : undefined);
      walk.stats.dirs++;
      return { ...meta(name, 'dir', info), size: 0, subtree };
    }
    if (dirent.isSymbolicLink()) {
      return await walk.limit(async () => {
        const info = await lstat(abs);
        const target = await readlink(abs);
        // The restore refuses such a link (restorer.ts): storing it would make the whole folder unrestorable.
        if (!linkStaysInside(walk.root, dir, target)) {
          walk.stats.skipped.push({
            path: relPath,
            reason: `a symlink to ${JSON.stringify(target)}, outside the folder (a restore refuses it)`,
          });
          return undefined;
        }
        walk.stats.symlinks++;
        return { ...meta(name, 'symlink', info), size: 0, target };
      });
    }
    if (dirent.isFile()) return await walk.limit(() => storeRegularFile(walk, abs, relPath, name, old));
    walk.stats.skipped.push({ path: relPath, reason: 'not a regular file, directory or symlink' });
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // ELOOP: the file became a link after it was listed; the next backup stores the link as a link.
    if (code !== 'ENOENT' && code !== 'ELOOP') throw error;
    walk.stats.skipped.push({ path: relPath, reason: 'vanished or replaced during the backup' });
    return undefined;
  }
}

async function storeRegularFile(
  walk: Walk,
  abs: string,
  relPath: string,
  name: string,
  old: TreeEntry | undefined,
): Promise<TreeEntry> {
  const info = await lstat(abs);
  const entry = meta(name, 'file', info);
  if (
    old?.type === 'file' &&
    old.size === info.size &&
    old.mtimeMs === info.mtimeMs &&
    old.inode === info.ino &&
    (await allKnown(walk.repo, old.chunks ?? []))
  ) {
    walk.stats.filesUnchanged++;
    walk.onProgress?.(walk.stats, relPath);
    return { ...entry, size: old.size, chunks: old.chunks ?? [] };
  }
  // The entry keeps the mtime seen before reading: a file changed while read differs next time and is read again.
  // A file swapped for a link or a FIFO since readdir: never followed, never waited on (a FIFO reads as empty).
  const handle = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  let stored: Awaited<ReturnType<typeof storeFile>>;
  try {
    stored = await storeFile(walk.repo, handle.createReadStream({ highWaterMark: READ_BUFFER }));
  } finally {
    await handle.close().catch(() => {});
  }
  if (old?.type === 'file') walk.stats.filesChanged++;
  else walk.stats.filesNew++;
  walk.stats.bytesRead += stored.size;
  walk.stats.blobsAdded += stored.blobsAdded;
  walk.stats.bytesAdded += stored.bytesAdded;
  walk.onProgress?.(walk.stats, relPath);
  return { ...entry, size: stored.size, chunks: stored.chunks };
}

function meta(name: string, type: TreeEntry['type'], info: Awaited<ReturnType<typeof lstat>>) {
  return {
    name,
    type,
    mode: Number(info.mode) & 0o7777,
    mtimeMs: Number(info.mtimeMs),
    inode: Number(info.ino),
  };
}

/** The parent's entries by name; a damaged or missing parent only means every file is read again. */
async function parentEntries(
  repo: RepositoryHandle,
  treeId: string | undefined,
): Promise<Map<string, TreeEntry>> {
  if (!treeId) return new Map();
  try {
    return new Map((await repo.readTree(treeId)).entries.map((entry) => [entry.name, entry]));
  } catch (error) {
    if (
      error instanceof CorruptBlobError ||
      error instanceof MissingBlobError ||
      error instanceof InvalidTreeError
    )
      return new Map();
    throw error;
  }
}

/** A reused chunk must still be in the repository, or the new snapshot would point at nothing. */
async function allKnown(repo: RepositoryHandle, ids: string[]): Promise<boolean> {
  const sizes = await repo.index.load();
  return ids.every((id) => sizes.has(id));
}

function count(stats: StoreStats, put: PutBlobResult): void {
  if (!put.stored) return;
  stats.blobsAdded++;
  stats.bytesAdded += put.storedSize;
}
