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
