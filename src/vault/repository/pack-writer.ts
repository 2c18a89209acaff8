import { randomBytes } from 'node:crypto';
import type { BlobStore } from '../../blobstore/index.ts';
import { lengthOf } from './codec.ts';
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
  /** The pack's bytes so far, at the start of a buffer that is reused once the pack is written. */
  buffer: Buffer;
  entries: PackEntry[];
  bytes: number;
}

/** Room a pack buffer has beyond the target, so that a blob arriving near the target still fits. */
const SLACK_BYTES = 2 * 1024 * 1024;

/**
 * Gathers stored blobs into pack files (§13): each pack is one atomic put (temp, fsync, rename), and once every
 * pack is durable (its directory fsynced too, once per directory), `flush` writes the index file naming their
 * blobs, and only then reports them as stored.
 * So a blob is in an index only once its pack is durable, and a record written after `flush` refers only to
 * blobs a reader can find (I6). A crash before `flush` leaves packs no index names: prune deletes them.
 *
 * Blobs are copied into a few pack-sized buffers that are reused: memory stays at most one pack filling and
 * WRITES_IN_FLIGHT being written, whatever the number of callers, with no large allocation per pack (a
 * 16 MiB concatenation per pack, with only the caller that filled it waiting, had taken the peak RSS of storing
 * 40,000 blobs of 10-50 KB from 118 MB (a file each) to 409 MB; with reused buffers: 230 MB, and 200 MB with
 * 8 MiB packs).
 */
export class PackWriter {
  private open: OpenPack | undefined;
  private readonly spare: Buffer[] = [];
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

  /** The stored size of a blob added since the last flush; undefined for any other. */
  pendingLength(id: string): number | undefined {
    return this.pending.get(id)?.entry.length;
  }

  /** A blob added since the last flush, for a reader that needs it before then (a copy: buffers are reused). */
  pendingBlob(id: string): PendingBlob | undefined {
    const blob = this.pending.get(id);
    if (!blob) return undefined;
    if (blob.bytes) return { bytes: Buffer.from(blob.bytes) };
    return { pack: blob.pack!, entry: blob.entry };
  }

  /**
   * Copies a blob's stored bytes (§4), or the pieces whose concatenation they are, into the pack being filled.
   * Every caller waits while that pack has no room and every write slot is busy, so memory stays bounded however
   * many callers store at once.
   */
  async add(id: string, stored: Buffer | Buffer[]): Promise<void> {
    const parts = Buffer.isBuffer(stored) ? [stored] : stored;
    const length = lengthOf(parts);
    for (;;) {
      this.throwIfFailed();
      if (this.pending.has(id)) return;
      if (!this.open || this.open.entries.length === 0 || this.fits(this.open, length)) break;
      if (this.writes.size < WRITES_IN_FLIGHT) this.startWrite();
      else await Promise.race(this.writes);
    }
    this.open ??= this.newPack(length);
    const open = this.open;
    const entry = { id, offset: open.bytes, length };
    for (const part of parts) open.bytes += part.copy(open.buffer, open.bytes);
    open.entries.push(entry);
    this.pending.set(id, { bytes: open.buffer.subarray(entry.offset, entry.offset + entry.length), entry });
    if (!this.fits(open, 0) && this.writes.size < WRITES_IN_FLIGHT) this.startWrite();
  }

  /** Writes what is being filled, waits for every pack, then writes their index; nothing pending afterwards. */
  async flush(): Promise<void> {
    while (this.open && this.open.entries.length > 0) {
      if (this.writes.size < WRITES_IN_FLIGHT) this.startWrite();
      else await Promise.race(this.writes);
    }
    await Promise.all([...this.writes]);
    this.throwIfFailed();
    const packs = this.written;
    if (packs.length === 0) return;
    await this.sink.store.syncEntries?.();
    for (const group of indexGroups(packs)) this.onIndexFile(await writeIndexFile(this.sink, group));
    const sizes = new Map(this.writtenSizes);
    this.written = [];
    this.writtenSizes.clear();
    this.onIndexed(packs, sizes);
    for (const pack of packs) for (const blob of pack.blobs) this.pending.delete(blob.id);
  }

  /** Whether `more` bytes still go into this pack: below the target, within its buffer, under the blob limit. */
  private fits(pack: OpenPack, more: number): boolean {
    return (
      pack.bytes < this.targetBytes &&
      pack.bytes + more <= pack.buffer.length &&
      pack.entries.length < PACK_MAX_BLOBS
    );
  }

  /** A pack buffer: a reused one when the blob fits in it, else one just for this (large) blob. */
  private newPack(firstBlob: number): OpenPack {
    const size = this.targetBytes + SLACK_BYTES;
    const buffer =
      firstBlob <= size ? (this.spare.pop() ?? Buffer.allocUnsafe(size)) : Buffer.allocUnsafe(firstBlob);
    return { buffer, entries: [], bytes: 0 };
  }

  /** Starts writing the pack being filled (the caller checked a slot is free); the next blob starts a new one. */
  private startWrite(): void {
    const pack = this.open!;
    this.open = undefined;
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
    const total = pack.bytes + trailer.length + TRAILER_LENGTH_BYTES;
    let bytes: Buffer;
    if (total <= pack.buffer.length) {
      trailer.copy(pack.buffer, pack.bytes);
      length.copy(pack.buffer, pack.bytes + trailer.length);
      bytes = pack.buffer.subarray(0, total);
    } else {
      bytes = Buffer.concat([pack.buffer.subarray(0, pack.bytes), trailer, length]);
    }
    // Its name becomes durable at flush, before an index names it: one fsync per directory, not one per pack.
    await this.sink.store.put(key, bytes, { size: bytes.length, durable: 'contents' });
    for (const entry of pack.entries) {
      const blob = this.pending.get(entry.id);
      if (blob) {
        blob.bytes = undefined;
        blob.pack = id;
      }
    }
    this.written.push({ pack: id, blobs: pack.entries });
    this.writtenSizes.set(id, bytes.length);
    // Written: its buffer takes the next pack (only pack-sized ones; one for a large blob is let go).
    if (pack.buffer.length === this.targetBytes + SLACK_BYTES && this.spare.length <= WRITES_IN_FLIGHT)
      this.spare.push(pack.buffer);
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
