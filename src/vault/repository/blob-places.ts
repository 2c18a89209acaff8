import { BlobNotFoundError, type BlobStore, getBytes, RangeBeyondEndError } from '../../blobstore/index.ts';
import type { BlobIndex } from './blob-index.ts';
import { DecodeError } from './codec.ts';
import { CorruptBlobError, MissingBlobError } from './errors.ts';
import { dataKey, indexKey, PACKED_FORMAT_VERSION, packKey } from './format.ts';
import { type IndexedPack, PackFormatError, parseIndex } from './pack-format.ts';
import { PackWriter } from './pack-writer.ts';

/** What the blob places need of their repository. */
export interface PlacesOwner {
  readonly store: BlobStore;
  readonly location: string;
  readonly index: BlobIndex;
  readonly config: { version: number };
  encodeRecord(name: string, plaintext: Buffer): Promise<Buffer>;
  decodeRecord(name: string, stored: Buffer): Promise<Buffer>;
  blobId(plaintext: Buffer): string;
}

/**
 * Where a repository's stored blobs live: one file each under data/ (every version), or in pack files named by
 * index files (version 3, §13). Writers choose packs with `packBlobs()`; readers find a blob either way.
 */
export class BlobPlaces {
  private packer: PackWriter | undefined;
  private refreshing: Promise<unknown> | undefined;

  constructor(private readonly owner: PlacesOwner) {}

  /** Whether this repository's format has pack files (readers look for them, writers may write them). */
  get packsAllowed(): boolean {
    return this.owner.config.version >= PACKED_FORMAT_VERSION;
  }

  /** From now on new blobs go into pack files, when the format allows; `flush` makes them findable. */
  packBlobs(): void {
    if (!this.packsAllowed || this.packer) return;
    this.packer = new PackWriter(this.owner, (packs, sizes) => this.owner.index.addPacks(packs, sizes));
  }

  /** Stored bytes of a blob this process added and has not flushed yet, by size; undefined otherwise. */
  pendingSize(id: string): number | undefined {
    return this.packer?.pendingLength(id);
  }

  /**
   * Stores a blob's encoded bytes (or the pieces whose concatenation they are): into the pack being filled, or as
   * its own durable file.
   */
  async put(id: string, stored: Buffer | Buffer[]): Promise<void> {
    if (this.packer) {
      await this.packer.add(id, stored);
      return;
    }
    const bytes = Buffer.isBuffer(stored) ? stored : Buffer.concat(stored);
    await this.owner.store.put(dataKey(id), bytes, { size: bytes.length });
    this.owner.index.addLoose(id, bytes.length);
  }

  /** Makes every blob put so far durable and findable; a record that names them is written after this (I6). */
  async flush(): Promise<void> {
    await this.packer?.flush();
  }

  /** Whether the target holds the blob now (asked of the target, not of the cached index). */
  async exists(id: string): Promise<boolean> {
    const where = this.packsAllowed ? await this.owner.index.location(id) : undefined;
    if (where && (await this.owner.store.head(packKey(where.pack)))) return true;
    return (await this.owner.store.head(dataKey(id))) !== undefined;
  }

  /** A blob's stored bytes, wherever they are; MissingBlobError when no place holds it. */
  async read(id: string): Promise<Buffer> {
    const pending = this.packer?.pendingBlob(id);
    if (pending && 'bytes' in pending) return pending.bytes;
    if (pending) return this.readRange(id, pending.pack, pending.entry);
    const found = await this.readKnown(id);
    if (found) return found;
    if (this.packsAllowed) {
      // Another process may have packed it since this index was loaded.
      this.refreshing ??= this.owner.index.reload().finally(() => {
        this.refreshing = undefined;
      });
      await this.refreshing;
      const again = await this.readKnown(id);
      if (again) return again;
    }
    throw new MissingBlobError(id, this.owner.location);
  }

  private async readKnown(id: string): Promise<Buffer | undefined> {
    const where = this.packsAllowed ? await this.owner.index.location(id) : undefined;
    if (where) return this.readRange(id, where.pack, where);
    try {
      return await getBytes(this.owner.store, dataKey(id));
    } catch (error) {
      if (error instanceof BlobNotFoundError) return undefined;
      throw error;
    }
  }

  private async readRange(
    id: string,
    pack: string,
    where: { offset: number; length: number },
  ): Promise<Buffer> {
    try {
      return await this.owner.store.getRange(packKey(pack), where.offset, where.length);
    } catch (error) {
      if (error instanceof BlobNotFoundError) throw new MissingBlobError(id, this.owner.location);
      if (error instanceof RangeBeyondEndError)
        throw new CorruptBlobError(
          id,
          this.owner.location,
          'its pack ends before it: the pack was cut short',
        );
      throw error;
    }
  }

  /** An index file's packs, authenticated for its name and matching its id; throws saying why not. */
  async readIndex(id: string): Promise<IndexedPack[]> {
    const key = indexKey(id);
    const plaintext = await this.owner.decodeRecord(key, await getBytes(this.owner.store, key));
    if (this.owner.blobId(plaintext) !== id) throw new DecodeError('content does not match its name');
    try {
      return parseIndex(plaintext);
    } catch (error) {
      if (error instanceof PackFormatError) throw new DecodeError(`not an index: ${error.message}`);
      throw error;
    }
  }
}
