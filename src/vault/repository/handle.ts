import type { BlobStore } from '../../blobstore/index.ts';
import type { BlobIndex } from './blob-index.ts';
import type { Chunker } from './chunker.ts';
import type { Codec, Kind } from './codec.ts';
import type { ConfigFile } from './format.ts';
import type { Snapshot } from './snapshot.ts';
import type { Tree } from './tree.ts';

export type BlobType = 'data' | 'tree';

export interface PutBlobResult {
  id: string;
  /** True when this call uploaded the blob; false when the repository already held it. */
  stored: boolean;
  /** Bytes the blob takes in the repository (after compression and encryption). */
  storedSize: number;
}

/**
 * What the repository's jobs (archiver, restorer, check, locks, ledger, copy) need of an open repository:
 * `Repository` implements it, and they depend on this rather than on the class that calls them.
 */
export interface RepositoryHandle {
  readonly id: string;
  readonly location: string;
  readonly store: BlobStore;
  readonly config: ConfigFile;
  readonly chunker: Chunker;
  readonly codec: Codec;
  readonly index: BlobIndex;
  blobId(plaintext: Buffer): string;
  putBlob(type: BlobType, plaintext: Buffer, options?: { compress?: boolean }): Promise<PutBlobResult>;
  getBlob(id: string): Promise<Buffer>;
  /** A blob's bytes as stored, loose or packed, not decoded. */
  readStored(id: string): Promise<Buffer>;
  /** readStored, after checking the bytes decode to content with this id (CorruptBlobError otherwise). */
  readStoredVerified(id: string): Promise<Buffer>;
  /** Stores bytes another target stored under the same keys; false when held already. */
  putStored(id: string, stored: Buffer): Promise<boolean>;
  /** New blobs go into pack files where the format has them. */
  packBlobs(): void;
  /** Makes every blob stored so far durable and findable: before any record naming them (I6). */
  flushBlobs(): Promise<void>;
  readBlob(id: string): Promise<{ kind: Kind; plaintext: Buffer }>;
  readTree(id: string): Promise<Tree>;
  listSnapshots(): Promise<string[]>;
  /** Records (snapshots, ledger entries): sealed or tagged under the repository key, checked for their name. */
  encodeRecord(name: string, plaintext: Buffer, limit?: number): Promise<Buffer>;
  decodeRecord(name: string, stored: Buffer, limit?: number): Promise<Buffer>;
  loadSnapshot(id: string): Promise<Snapshot>;
}
