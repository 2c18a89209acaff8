import {
  CorruptBlobError,
  InvalidTreeError,
  MissingBlobError,
  type Repository,
  type TreeEntry,
} from '../repository/index.ts';

/** Every file entry of a tree, by its path, read once from the parent snapshot. */
export async function indexTree(
  repo: Repository,
  treeId: string | undefined,
  prefix = '',
  out = new Map<string, TreeEntry>(),
  tolerant = false,
) {
  if (!treeId) return out;
  let tree: Awaited<ReturnType<Repository['readTree']>>;
  try {
    tree = await repo.readTree(treeId);
  } catch (error) {
    // For the parent of a backup, a damaged or missing tree only means its objects are read again.
    if (
      tolerant &&
      (error instanceof CorruptBlobError ||
        error instanceof MissingBlobError ||
        error instanceof InvalidTreeError)
    )
      return out;
    throw error;
  }
  for (const entry of tree.entries) {
    const full = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.type === 'dir') await indexTree(repo, entry.subtree, full, out, tolerant);
    else if (entry.type === 'file') out.set(full, entry);
  }
  return out;
}

export async function runLimited<T>(
  items: T[],
  limit: number,
  fn: (item: T, lane: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async (_, lane) => {
      while (next < items.length) await fn(items[next++]!, lane);
    }),
  );
}

/** The object keys a snapshot's objects tree holds (no object is read). */
export async function storedObjectKeys(repo: Repository, treeId: string): Promise<Set<string>> {
  return new Set((await indexTree(repo, treeId)).keys());
}
