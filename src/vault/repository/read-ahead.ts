import type { RepositoryHandle } from './handle.ts';

/**
 * The verified plaintext of `ids`, in order, with up to `depth` blobs being read and decoded ahead: a blob's
 * read from the store overlaps the decryption and decompression of the one before it, and the caller's
 * write of the one before that. A damaged blob throws when its turn comes.
 */
export async function* readBlobsAhead(
  repo: Pick<RepositoryHandle, 'getBlob'>,
  ids: readonly string[],
  depth: number,
): AsyncGenerator<Buffer> {
  const reads: Promise<Buffer>[] = [];
  let next = 0;
  const fetchAhead = () => {
    while (reads.length < depth && next < ids.length) {
      const read = repo.getBlob(ids[next++]!);
      // Awaited in order below, or abandoned when an earlier blob failed or the reader stopped: never an
      // unhandled rejection.
      read.catch(() => {});
      reads.push(read);
    }
  };
  fetchAhead();
  while (reads.length > 0) {
    const data = await reads.shift()!;
    fetchAhead();
    yield data;
  }
}
