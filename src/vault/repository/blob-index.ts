import type { BlobStore } from '../../blobstore/index.ts';
import { DATA_PREFIX, idOfDataKey } from './format.ts';

export interface IndexListing {
  /** Stored size of every blob, by id. */
  sizes: Map<string, number>;
  /** Keys under data/ that are not well-formed blob names (left by something else; never deleted here). */
  unexpected: string[];
}

/** One paginated listing of data/: what a target holds, without one request per blob. */
export async function listBlobs(store: BlobStore): Promise<IndexListing> {
  const sizes = new Map<string, number>();
  const unexpected: string[] = [];
  for await (const info of store.list(DATA_PREFIX)) {
    const id = idOfDataKey(info.key);
    if (id) sizes.set(id, info.size);
    else unexpected.push(info.key);
  }
  return { sizes, unexpected };
}

/**
 * The ids a repository holds, loaded on first use and kept current by this process's own writes.
 * Blobs that other processes add meanwhile are unknown here: at worst they are uploaded again,
 * which content addressing makes harmless.
 */
export class BlobIndex {
  private sizes: Map<string, number> | undefined;
  private loading: Promise<Map<string, number>> | undefined;

  constructor(private readonly store: BlobStore) {}

  async load(): Promise<Map<string, number>> {
    if (this.sizes) return this.sizes;
    this.loading ??= listBlobs(this.store).then(({ sizes }) => {
      this.sizes = sizes;
      return sizes;
    });
    // A failed listing (target unreachable) must not stick: the next call tries again.
    this.loading.catch(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  /** Replaces what is known with a fresh listing (check and prune want the truth, not a cache). */
  async reload(): Promise<IndexListing> {
    const listing = await listBlobs(this.store);
    // The same Map object: callers that hold it (putBlob in flight) keep seeing the current state.
    const sizes = await this.load();
    sizes.clear();
    for (const [id, size] of listing.sizes) sizes.set(id, size);
    return listing;
  }
}
