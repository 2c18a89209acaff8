import { open } from 'node:fs/promises';
import type { Repository } from '../repository/index.ts';
import { readBlobsAhead } from '../repository/read-ahead.ts';

/** Chunks read ahead of the consumer: the store's read overlaps decoding and the consumer's write. */
const READ_AHEAD = 4;

/** Stores one stream as a tree with a single file entry: records name the tree, so check and prune see it. */
export async function storeAsTree(
  repo: Repository,
  name: string,
  source: AsyncIterable<Uint8Array | string>,
): Promise<{ tree: string; size: number; chunks: string[]; bytesAdded: number }> {
  const stored = await repo.storeFile(source);
  const tree = await repo.writeTree([
    { name, type: 'file', mode: 0o600, mtimeMs: 0, size: stored.size, chunks: stored.chunks },
  ]);
  return { tree, size: stored.size, chunks: stored.chunks, bytesAdded: stored.bytesAdded };
}

/** The verified plaintext chunks of a single-file tree, in order (each re-hashed against its id on read). */
export async function* readTreeFile(repo: Repository, tree: string): AsyncGenerator<Buffer> {
  const { entries } = await repo.readTree(tree);
  const [entry] = entries;
  if (entries.length !== 1 || entry?.type !== 'file') throw new Error(`Tree ${tree} does not hold one file.`);
  yield* readBlobsAhead(repo, entry.chunks ?? [], READ_AHEAD);
}

/** Every blob a single-file tree needs: the tree and its chunks. */
export async function treeFileBlobs(repo: Repository, tree: string): Promise<string[]> {
  const { entries } = await repo.readTree(tree);
  return [tree, ...entries.flatMap((entry) => entry.chunks ?? [])];
}

/** Chunks of a growing file that ended at a content boundary: the same bytes cut again give the same ones. */
export interface StableChunks {
  ids: string[];
  sizes: number[];
  /** The bytes they hold: the file's first `bytes` bytes. */
  bytes: number;
}

/**
 * Stores a file that only grows at its end (a partial WAL segment, whose bytes below the flush position
 * never change) as a single-file tree, chunking only what follows the chunks an earlier store left stable.
 * The content-defined chunker decides each cut from the bytes after the previous cut alone, so this gives
 * the same chunks as cutting the whole file again, for the cost of the new bytes and the last chunk.
 */
export async function storeGrowingFile(
  repo: Repository,
  name: string,
  stable: StableChunks | undefined,
  tail: Buffer,
): Promise<{ tree: string; size: number; stable: StableChunks }> {
  const prior = stable ?? { ids: [], sizes: [], bytes: 0 };
  const stored = await repo.storeFile(
    (async function* () {
      yield tail;
    })(),
  );
  const ids = [...prior.ids, ...stored.chunks];
  const sizes = [...prior.sizes, ...stored.chunkSizes];
  const size = prior.bytes + stored.size;
  const tree = await repo.writeTree([{ name, type: 'file', mode: 0o600, mtimeMs: 0, size, chunks: ids }]);
  // The last chunk ended where the bytes did, not at a content boundary: the next store cuts it again.
  const keep = Math.max(0, ids.length - 1);
  return {
    tree,
    size,
    stable: { ids: ids.slice(0, keep), sizes: sizes.slice(0, keep), bytes: size - (sizes[keep] ?? 0) },
  };
}

/** A whole WAL file (a completed segment or a history file). */
export async function readWhole(file: string): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** `length` bytes of a file from `position`, or undefined when it was renamed or is shorter (the next cycle retries). */
export async function readRange(file: string, position: number, length: number): Promise<Buffer | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, position);
    return bytesRead === length ? buffer : undefined;
  } finally {
    await handle.close();
  }
}
