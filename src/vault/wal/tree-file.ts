import { open } from 'node:fs/promises';
import { type Repository, storeChunks } from '../repository/index.ts';
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
 * The end of a growing file after its last content-defined cut is stored in pieces of this size. Each cycle of
 * the shipper stored that unfinished chunk whole (0.5 to 8 MiB of WAL) under a new id, again and again until
 * the chunker cut it: the vault of an idle service grew 7.1 MB a minute (1.1 MB in pieces). Full pieces hold
 * the same bytes the next time and are found by their ids, so a cycle adds its new bytes and one piece.
 */
export const GROWING_TAIL_PIECE = 64 * 1024;

/**
 * Stores a file that only grows at its end (a partial WAL segment, whose bytes below the flush position
 * never change) as a single-file tree, chunking only what follows the chunks an earlier store left stable.
 * The content-defined chunker decides each cut from the bytes after the previous cut alone, so those chunks
 * are the ones cutting the whole file again gives (a completed segment finds them); what follows the last
 * cut goes in GROWING_TAIL_PIECE pieces, and is cut again from its start by the next store.
 */
export async function storeGrowingFile(
  repo: Repository,
  name: string,
  stable: StableChunks | undefined,
  tail: Buffer,
): Promise<{ tree: string; size: number; stable: StableChunks }> {
  const prior = stable ?? { ids: [], sizes: [], bytes: 0 };
  const cuts = [...repo.chunker.chunkBuffer(tail)];
  // The last cut ended where the bytes did, not at a content boundary.
  const unfinished = cuts.pop();
  const pieces: Buffer[] = [];
  for (let at = 0; unfinished && at < unfinished.length; at += GROWING_TAIL_PIECE) {
    pieces.push(unfinished.subarray(at, at + GROWING_TAIL_PIECE));
  }
  const stored = await storeChunks(repo, [...cuts, ...pieces], {});
  const ids = [...prior.ids, ...stored.chunks];
  const sizes = [...prior.sizes, ...stored.chunkSizes];
  const size = prior.bytes + stored.size;
  const tree = await repo.writeTree([{ name, type: 'file', mode: 0o600, mtimeMs: 0, size, chunks: ids }]);
  const keep = prior.ids.length + cuts.length;
  return {
    tree,
    size,
    stable: { ids: ids.slice(0, keep), sizes: sizes.slice(0, keep), bytes: size - (unfinished?.length ?? 0) },
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
