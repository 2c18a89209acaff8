import type { BlobStore } from '../../blobstore/index.ts';
import type { BlobIndex } from './blob-index.ts';
import type { Chunker } from './chunker.ts';
import type { Codec, Kind } from './codec.ts';
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
  readonly chunker: Chunker;
  readonly codec: Codec;
  readonly index: BlobIndex;
  blobId(plaintext: Buffer): string;
  putBlob(type: BlobType, plaintext: Buffer, options?: { compress?: boolean }): Promise<PutBlobResult>;
  getBlob(id: string): Promise<Buffer>;
  readBlob(id: string): Promise<{ kind: Kind; plaintext: Buffer }>;
  readTree(id: string): Promise<Tree>;
  listSnapshots(): Promise<string[]>;
  /** Records (snapshots, ledger entries): sealed or tagged under the repository key, checked for their name. */
  encodeRecord(name: string, plaintext: Buffer, limit?: number): Promise<Buffer>;
  decodeRecord(name: string, stored: Buffer, limit?: number): Promise<Buffer>;
  loadSnapshot(id: string): Promise<Snapshot>;
}
