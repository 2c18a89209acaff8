import type { BlobStore } from '../../blobstore/blobstore.ts';
import { packKey } from '../repository/format.ts';
import { CorruptBlobError, type Repository } from '../repository/index.ts';
import { TaskThread } from './task-thread.ts';

export interface ObjectTask {
  n: number;
  /** The pack file, the blob's place in it, and where the object goes. */
  pack: string;
  offset: number;
  length: number;
  sha256: string;
  target: string;
}

export type ObjectTaskResult =
  | { n: number; written: number }
  | { n: number; exists: true }
  | { n: number; damaged: string; blob?: true }
  | { n: number; error: string };

export type ThreadOutcome = { written: number } | { damaged: string } | 'not-here';

/**
 * Worker threads that restore objects beside the main thread (objects-restore-worker.ts), for a restore whose
 * repository and target are both folders. Two: a thread writing objects is bound by the kernel's copy into the
 * page cache (half its time in a `perf` profile of a restore of 2 GB of images), so once the database is loaded
 * one thread left the second core idle for the last third of the restore. They take objects of one packed blob
 * with a SHA-256 in their key, into a place where nothing is yet; anything else ('not-here') stays on the main
 * thread's path.
 */
export class ObjectRestoreThreads {
  private readonly busy: number[];
  /** Objects each thread wrote, in the order the threads started. */
  readonly writes: number[] = [];
  private closed = false;

  private constructor(
    private readonly repo: Repository,
    private readonly target: BlobStore & { localPath(key: string): string },
    private readonly threads: TaskThread<ObjectTask, ObjectTaskResult>[],
  ) {
    this.busy = threads.map(() => 0);
  }

  /** Threads for this restore; undefined when the repository or the target is not a folder. */
  static start(repo: Repository, target: BlobStore, count = THREADS): ObjectRestoreThreads | undefined {
    if (!repo.store.localPath || !target.localPath) return undefined;
    const threads = new ObjectRestoreThreads(
      repo,
      target as BlobStore & { localPath(key: string): string },
      [],
    );
    for (let i = 0; i < count; i++) threads.add();
    return threads;
  }

  /** One thread more (at most THREADS): for when another part of the restore no longer needs the core. */
  add(): void {
    if (this.closed || this.threads.length >= THREADS) return;
    const workerData = { key: this.repo.codec.decodingKey, limit: this.repo.blobLimit };
    this.threads.push(
      TaskThread.start<ObjectTask, ObjectTaskResult>(import.meta.url, 'objects-restore-worker', workerData),
    );
    this.busy.push(0);
    this.writes.push(0);
  }

  /** Restores one object on a thread, or says it is the main thread's ('not-here'), even after a failure there. */
  async restore(key: string, chunks: readonly string[], sha256: string | undefined): Promise<ThreadOutcome> {
    if (chunks.length !== 1 || !sha256) return 'not-here';
    const place = await this.repo.index.location(chunks[0]!);
    // Chosen once the place is known: lanes that asked for theirs together must not all pick the same thread.
    const slot = this.leastBusy();
    if (!place || slot === undefined) return 'not-here';
    this.busy[slot]!++;
    const result = await this.threads[slot]!.run({
      pack: this.repo.store.localPath!(packKey(place.pack)),
      offset: place.offset,
      length: place.length,
      sha256,
      target: this.target.localPath(key),
    }).finally(() => this.busy[slot]!--);
    // A failure that is not damage (a full disk, a dead thread) is the main thread's to meet again and to name.
    if ('error' in result || 'exists' in result) return 'not-here';
    if ('damaged' in result) {
      const reason = result.blob
        ? new CorruptBlobError(chunks[0]!, this.repo.location, result.damaged).message
        : result.damaged;
      return { damaged: reason };
    }
    this.writes[slot]!++;
    return { written: result.written };
  }

  /** The live thread with the fewest objects in hand. */
  private leastBusy(): number | undefined {
    let best: number | undefined;
    this.threads.forEach((thread, i) => {
      if (thread.alive && (best === undefined || this.busy[i]! < this.busy[best]!)) best = i;
    });
    return best;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.map((thread) => thread.close()));
  }
}

const THREADS = 2;
