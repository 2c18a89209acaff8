import { randomBytes } from 'node:crypto';
import type { BlobStore } from '../../blobstore/index.ts';
import { indexKey, packKey } from './format.ts';
import {
  encodeIndex,
  encodeTrailer,
  INDEX_MAX_BLOBS,
  type IndexedPack,
  PACK_TARGET_BYTES,
  type PackEntry,
  TRAILER_LENGTH_BYTES,
} from './pack-format.ts';

/** A pack's trailer names at most this many blobs, so that it decodes within a record's limit. */
const PACK_MAX_BLOBS = 20_000;
/** Packs written at once: one fills while the other is fsynced. */
const WRITES_IN_FLIGHT = 2;

/** What a pack writer needs of its repository. */
export interface PackSink {
  readonly store: BlobStore;
  encodeRecord(name: string, plaintext: Buffer): Promise<Buffer>;
  blobId(plaintext: Buffer): string;
}

/** A blob added but not yet in an index file: its bytes while its pack fills, then where the pack holds them. */
export type PendingBlob = { bytes: Buffer } | { pack: string; entry: PackEntry };

interface OpenPack {
  parts: Buffer[];
  entries: PackEntry[];
  bytes: number;
}

const emptyPack = (): OpenPack => ({ parts: [], entries: [], bytes: 0 });

/**
 * Gathers stored blobs into pack files (§13): each pack is one atomic put (temp, fsync, rename), and once every
 * pack is durable, `flush` writes the index file naming their blobs, and only then reports them as stored.
 * So a blob is in an index only once its pack is durable, and a record written after `flush` refers only to
 * blobs a reader can find (I6). A crash before `flush` leaves packs no index names: prune deletes them.
 */
export class PackWriter {
  private open = emptyPack();
  private readonly writes = new Set<Promise<void>>();
  private written: IndexedPack[] = [];
  private readonly writtenSizes = new Map<string, number>();
  private readonly pending = new Map<string, { bytes?: Buffer; pack?: string; entry: PackEntry }>();
  private failure: unknown;

  constructor(
    private readonly sink: PackSink,
    /** Told of every pack once the index file that names it is durable. */
    private readonly onIndexed: (packs: IndexedPack[], packSizes: Map<string, number>) => void,
    private readonly targetBytes = PACK_TARGET_BYTES,
    /** Told the id of every index file written. */
    private readonly onIndexFile: (id: string) => void = () => {},
  ) {}

  has(id: string): boolean {
    return this.pending.has(id);
  }

  /** A blob added since the last flush, for a reader that needs it before then. */
  pendingBlob(id: string): PendingBlob | undefined {
    const blob = this.pending.get(id);
    if (!blob) return undefined;
    if (blob.bytes) return { bytes: blob.bytes };
    return { pack: blob.pack!, entry: blob.entry };
  }

  /** Adds a blob's stored bytes (§4) to the pack being filled; waits while too many packs are being written. */
  async add(id: string, stored: Buffer): Promise<void> {
    this.throwIfFailed();
    if (this.pending.has(id)) return;
    const entry = { id, offset: this.open.bytes, length: stored.length };
    this.open.parts.push(stored);
    this.open.entries.push(entry);
    this.open.bytes += stored.length;
    this.pending.set(id, { bytes: stored, entry });
    if (this.open.bytes >= this.targetBytes || this.open.entries.length >= PACK_MAX_BLOBS) await this.seal();
  }

  /** Writes what is being filled, waits for every pack, then writes their index; nothing pending afterwards. */
  async flush(): Promise<void> {
    await this.seal();
    await Promise.all([...this.writes]);
    this.throwIfFailed();
    const packs = this.written;
    if (packs.length === 0) return;
    for (const group of indexGroups(packs)) this.onIndexFile(await writeIndexFile(this.sink, group));
    const sizes = new Map(this.writtenSizes);
    this.written = [];
    this.writtenSizes.clear();
    this.onIndexed(packs, sizes);
    for (const pack of packs) for (const blob of pack.blobs) this.pending.delete(blob.id);
  }

  private async seal(): Promise<void> {
    const pack = this.open;
    this.open = emptyPack();
    if (pack.entries.length === 0) return;
    while (this.writes.size >= WRITES_IN_FLIGHT) await Promise.race(this.writes);
    const write: Promise<void> = this.writePack(pack)
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => this.writes.delete(write));
    this.writes.add(write);
  }

  private async writePack(pack: OpenPack): Promise<void> {
    const id = randomBytes(32).toString('hex');
    const key = packKey(id);
    const trailer = await this.sink.encodeRecord(key, encodeTrailer(pack.entries));
    const length = Buffer.alloc(TRAILER_LENGTH_BYTES);
    length.writeUInt32LE(trailer.length);
    const bytes = Buffer.concat([...pack.parts, trailer, length]);
    // Pending reads are served from the pack's bytes, so the parts can go: memory holds each pack once.
    pack.parts.length = 0;
    for (const entry of pack.entries) {
      const blob = this.pending.get(entry.id);
      if (blob?.bytes) blob.bytes = bytes.subarray(entry.offset, entry.offset + entry.length);
    }
    await this.sink.store.put(key, bytes, { size: bytes.length });
    for (const entry of pack.entries) {
      const blob = this.pending.get(entry.id);
      if (blob) {
        blob.bytes = undefined;
        blob.pack = id;
      }
    }
    this.written.push({ pack: id, blobs: pack.entries });
    this.writtenSizes.set(id, bytes.length);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }
}

/** Writes one index file naming `packs` and returns its id: content-addressed, so writing it twice is harmless. */
export async function writeIndexFile(sink: PackSink, packs: readonly IndexedPack[]): Promise<string> {
  const plaintext = encodeIndex(packs);
  const id = sink.blobId(plaintext);
  const key = indexKey(id);
  const bytes = await sink.encodeRecord(key, plaintext);
  await sink.store.put(key, bytes, { size: bytes.length });
  return id;
}

/** Packs grouped so that no index file names more than INDEX_MAX_BLOBS blobs. */
export function indexGroups(packs: readonly IndexedPack[]): IndexedPack[][] {
  const groups: IndexedPack[][] = [];
  let current: IndexedPack[] = [];
  let blobs = 0;
  for (const pack of packs) {
    if (current.length > 0 && blobs + pack.blobs.length > INDEX_MAX_BLOBS) {
      groups.push(current);
      current = [];
      blobs = 0;
    }
    current.push(pack);
    blobs += pack.blobs.length;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
