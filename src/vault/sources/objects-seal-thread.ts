import type { BlobStore } from '../../blobstore/blobstore.ts';
import type { Repository, StoredFile } from '../repository/index.ts';
import { TaskThread } from './task-thread.ts';

export interface SealTask {
  n: number;
  /** The object's file, and the SHA-256 its key names. */
  file: string;
  sha256: string;
}

export type SealResult =
  | { n: number; id: string; size: number; stored: Buffer }
  /** Not sealed there (unreadable, empty or larger than one blob, or not its hash): the main thread's. */
  | { n: number; skipped: string }
  | { n: number; error: string };

/**
 * A worker thread (objects-seal-worker.ts) that reads, checks, names and encrypts the objects of a backup beside
 * the main thread, when the object store is a folder: in a first backup of 2 GB of images the main thread did
 * the reading, both hashes and the cipher of every byte itself. Only objects stored uncompressed as one blob
 * (images up to the chunker's largest chunk, repository/archiver.ts storeObjectBytes) go there; the main thread
 * puts what comes back into the repository as putBlob would (the same id, the same encoding).
 */
export class ObjectSealThread {
  /** Objects in the thread's hands now, those waiting for their turn, and the sizes of those sealed so far. */
  private inHand = 0;
  private readonly waiting: (() => void)[] = [];
  private sealedBytes = 0;
  private sealed = 0;

  private constructor(
    private readonly repo: Repository,
    private readonly objects: BlobStore & { localPath(key: string): string },
    private readonly thread: TaskThread<SealTask, SealResult>,
  ) {}

  /** A thread for this backup; undefined when the object store is not a folder. */
  static start(repo: Repository, objects: BlobStore): ObjectSealThread | undefined {
    if (!objects.localPath) return undefined;
    const keys = repo.codec.encodingKeys;
    const workerData = { ...keys, maxBytes: repo.chunker.maxSize };
    const thread = TaskThread.start<SealTask, SealResult>(import.meta.url, 'objects-seal-worker', workerData);
    return new ObjectSealThread(repo, objects as BlobStore & { localPath(key: string): string }, thread);
  }

  /**
   * Stores one object sealed on the thread; undefined when it is the main thread's to store (its path also meets
   * and names whatever kept it from the thread: damage, a failure to read, a thread that died).
   */
  async store(key: string, sha256: string): Promise<StoredFile | undefined> {
    while (this.inHand >= this.limit()) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.inHand++;
    try {
      return await this.seal(key, sha256);
    } finally {
      this.inHand--;
      // All of them look again: the limit may have grown with the sizes seen.
      for (const wake of this.waiting.splice(0)) wake();
    }
  }

  /**
   * How many objects the thread may hold: as many as fit in BYTES_IN_HAND at the average size sealed so far, so
   * that a batch of large images (each one sealed copy in flight) keeps memory flat, between 8 and MOST_IN_HAND.
   */
  private limit(): number {
    const average = this.sealed > 0 ? this.sealedBytes / this.sealed : 0;
    return average > 0 ? Math.max(8, Math.min(MOST_IN_HAND, Math.floor(BYTES_IN_HAND / average))) : 8;
  }

  private async seal(key: string, sha256: string): Promise<StoredFile | undefined> {
    if (!this.thread.alive) return undefined;
    const result = await this.thread.run({ file: this.objects.localPath(key), sha256 });
    if (!('stored' in result)) return undefined;
    this.sealedBytes += result.size;
    this.sealed++;
    // Moved between threads, a Buffer arrives as a plain Uint8Array over the same memory.
    const stored = Buffer.from(result.stored.buffer, result.stored.byteOffset, result.stored.byteLength);
    const added = await this.repo.putStored(result.id, stored);
    return {
      chunks: [result.id],
      chunkSizes: [result.size],
      size: result.size,
      blobsAdded: added ? 1 : 0,
      bytesAdded: added ? stored.length : 0,
    };
  }

  close(): Promise<void> {
    return this.thread.close();
  }
}

/**
 * The most objects the thread holds at once. The tasks asked for in one turn of the main thread's event loop go there
 * in one message, and with 8 the thread sat idle 85-93% of a files-shape first backup while the main thread chunked
 * the dump (its objects sealed at the end, alone): 14.0-14.4 s against 16.7-17.0 s with 64 (32: 15.1-15.4 s; 128:
 * 14.8 s).
 */
export const MOST_IN_HAND = 64;
/** The bytes of sealed objects the thread may hold at once (they come back in one message per batch). */
const BYTES_IN_HAND = 16 * 1024 * 1024;
