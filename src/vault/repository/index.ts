/** The vault's repository layer: format, blobs, trees, snapshots, locks, check, archive and restore. */
export * from './archiver.ts';
export type { BlobProblem, BrokenPath, CheckOptions, CheckReport } from './check.ts';
export { Chunker } from './chunker.ts';
export type { CopyResult } from './copy.ts';
export * from './errors.ts';
export {
  type ChunkerParams,
  DEFAULT_CHUNKER,
  DEFAULT_SCRYPT,
  FORMAT_VERSION,
  isId,
  type ScryptParams,
} from './format.ts';
export type { RepositoryHandle } from './handle.ts';
export {
  type DeletionRecord,
  deletionEntryName,
  listDeletions,
  readDeletion,
  readDeletionsAfter,
  writeDeletion,
} from './ledger.ts';
export {
  DEFAULT_REFRESH_EVERY_MS,
  DEFAULT_STALE_AFTER_MS,
  Lock,
  type LockOptions,
  type LockRecord,
} from './locks.ts';
export * from './repository.ts';
export * from './restorer.ts';
export type { Snapshot, SnapshotRecord } from './snapshot.ts';
export * from './stream.ts';
export type { EntryType, Tree, TreeEntry } from './tree.ts';
export * from './wal-records.ts';
