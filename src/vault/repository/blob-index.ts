import type { BlobStore } from '../../blobstore/index.ts';
import { DATA_PREFIX, INDEX_PREFIX, idOfDataKey, idOfIndexKey, idOfPackKey, PACKS_PREFIX } from './format.ts';
import { limiter } from './io.ts';
import type { IndexedPack, PackEntry } from './pack-format.ts';

/** Where a packed blob's stored bytes lie. */
export interface PackLocation {
  pack: string;
  offset: number;
  length: number;
}

export interface IndexListing {
  /** Stored size of every blob a reader can find, loose or packed, by id. */
  sizes: Map<string, number>;
  /** Blobs stored as their own file under data/. */
  loose: Set<string>;
  /** Blobs found in a pack that exists (a blob both loose and packed is read from its pack). */
  packed: Map<string, PackLocation>;
  /** Every pack file, by id, with its size. */
  packs: Map<string, number>;
  /** The index files read, by id, with the packs each names. */
  indexes: Map<string, IndexedPack[]>;
  /** Index files that could not be read or decoded, with why: the blobs they name are unknown. */
  unreadableIndexes: Array<{ id: string; reason: string }>;
  /** Keys under data/, packs/ or index/ that are not well-formed names (left by something else; never deleted here). */
  unexpected: string[];
}

/** Reads and decodes one index file; throws saying why it cannot. */
export type IndexReader = (id: string) => Promise<IndexedPack[]>;

/** One paginated listing each of data/, packs/ and index/, and the index files read: what a target holds. */
export async function listBlobs(store: BlobStore, readIndex?: IndexReader): Promise<IndexListing> {
  const listing: IndexListing = {
    sizes: new Map(),
    loose: new Set(),
    packed: new Map(),
    packs: new Map(),
    indexes: new Map(),
    unreadableIndexes: [],
    unexpected: [],
  };
  for await (const info of store.list(DATA_PREFIX)) {
    const id = idOfDataKey(info.key);
    if (id) {
      listing.sizes.set(id, info.size);
      listing.loose.add(id);
    } else listing.unexpected.push(info.key);
  }
  if (!readIndex) return listing;
  const indexIds: string[] = [];
  for await (const info of store.list(PACKS_PREFIX)) {
    const id = idOfPackKey(info.key);
    if (id) listing.packs.set(id, info.size);
    else listing.unexpected.push(info.key);
  }
  for await (const info of store.list(INDEX_PREFIX)) {
    const id = idOfIndexKey(info.key);
    if (id) indexIds.push(id);
    else listing.unexpected.push(info.key);
  }
  const limit = limiter(8);
  await Promise.all(
    indexIds.map((id) =>
      limit(async () => {
        try {
          listing.indexes.set(id, await readIndex(id));
        } catch (error) {
          listing.unreadableIndexes.push({ id, reason: (error as Error).message });
        }
      }),
    ),
  );
  for (const packs of listing.indexes.values()) addPacked(listing, packs);
  return listing;
}

/** Records the blobs of packs that exist; entries naming a pack that is gone are not blobs a reader can find. */
function addPacked(listing: Pick<IndexListing, 'sizes' | 'packed' | 'packs'>, packs: readonly IndexedPack[]) {
  for (const { pack, blobs } of packs) {
    if (!listing.packs.has(pack)) continue;
    for (const blob of blobs) {
      listing.packed.set(blob.id, location(pack, blob));
      listing.sizes.set(blob.id, blob.length);
    }
  }
}

const location = (pack: string, blob: PackEntry): PackLocation => ({
  pack,
  offset: blob.offset,
  length: blob.length,
});

/**
 * The ids a repository holds, loaded on first use and kept current by this process's own writes.
 * Blobs that other processes add meanwhile are unknown here: at worst they are uploaded again,
 * which content addressing makes harmless; a reader that misses one loads the index again (`refresh`).
 */
export class BlobIndex {
  private listing: IndexListing | undefined;
  private loading: Promise<IndexListing> | undefined;

  constructor(
    private readonly store: BlobStore,
    private readonly readIndex?: IndexReader,
  ) {}

  /** Stored size by id: the same Map for the life of this index, so holders see later writes. */
  async load(): Promise<Map<string, number>> {
    return (await this.loaded()).sizes;
  }

  /** Where a packed blob lies, or undefined for a loose (or unknown) one. */
  async location(id: string): Promise<PackLocation | undefined> {
    return (await this.loaded()).packed.get(id);
  }

  /** The whole listing as last loaded (prune and check need the packs and index files). */
  async current(): Promise<IndexListing> {
    return this.loaded();
  }

  /** A fresh listing that leaves what is known alone (check's second look). */
  fresh(): Promise<IndexListing> {
    return listBlobs(this.store, this.readIndex);
  }

  /** Replaces what is known with a fresh listing (check and prune want the truth, not a cache). */
  async reload(): Promise<IndexListing> {
    const fresh = await this.fresh();
    const listing = await this.loaded();
    // The same Map objects: callers that hold them (putBlob in flight) keep seeing the current state.
    listing.loose.clear();
    for (const id of fresh.loose) listing.loose.add(id);
    for (const field of ['sizes', 'packed', 'packs', 'indexes'] as const) {
      const target = listing[field] as Map<string, unknown>;
      target.clear();
      for (const [key, value] of fresh[field] as Map<string, unknown>) target.set(key, value);
    }
    listing.unreadableIndexes = fresh.unreadableIndexes;
    listing.unexpected = fresh.unexpected;
    return listing;
  }

  /** A loose blob this process stored. */
  addLoose(id: string, size: number): void {
    this.listing?.sizes.set(id, size);
    this.listing?.loose.add(id);
  }

  /** Packs this process wrote, once the index file naming them is durable. */
  addPacks(packs: readonly IndexedPack[], packSizes: ReadonlyMap<string, number>): void {
    if (!this.listing) return;
    for (const [pack, size] of packSizes) this.listing.packs.set(pack, size);
    addPacked(this.listing, packs);
  }

  /** A blob no longer held where this index last saw it: gone from what is known until the next listing. */
  forget(id: string): void {
    this.listing?.sizes.delete(id);
    this.listing?.loose.delete(id);
    this.listing?.packed.delete(id);
  }

  private async loaded(): Promise<IndexListing> {
    if (this.listing) return this.listing;
    this.loading ??= listBlobs(this.store, this.readIndex).then((listing) => {
      this.listing = listing;
      return listing;
    });
    // A failed listing (target unreachable) must not stick: the next call tries again.
    this.loading.catch(() => {
      this.loading = undefined;
    });
    return this.loading;
  }
}
