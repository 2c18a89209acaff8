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
 * A worker thread that restores objects beside the main thread (objects-restore-worker.ts), for a restore whose
 * repository and target are both folders: the second core was idle for the last third of a restore of 2 GB of
 * images, once the database was loaded. It takes objects of one packed blob with a SHA-256 in their key, into a
 * place where nothing is yet; anything else ('not-here') stays on the main thread's path.
 */
export class ObjectRestoreThread {
  private constructor(
    private readonly repo: Repository,
    private readonly target: BlobStore & { localPath(key: string): string },
    private readonly thread: TaskThread<ObjectTask, ObjectTaskResult>,
  ) {}

  /** A thread for this restore; undefined when the repository or the target is not a folder. */
  static start(repo: Repository, target: BlobStore): ObjectRestoreThread | undefined {
    if (!repo.store.localPath || !target.localPath) return undefined;
    const workerData = { key: repo.codec.decodingKey, limit: repo.blobLimit };
    const thread = TaskThread.start<ObjectTask, ObjectTaskResult>(
      import.meta.url,
      'objects-restore-worker',
      workerData,
    );
    return new ObjectRestoreThread(repo, target as BlobStore & { localPath(key: string): string }, thread);
  }

  /** Restores one object on the thread, or says it is the main thread's ('not-here'), even after a failure here. */
  async restore(key: string, chunks: readonly string[], sha256: string | undefined): Promise<ThreadOutcome> {
    if (!this.thread.alive || chunks.length !== 1 || !sha256) return 'not-here';
    const place = await this.repo.index.location(chunks[0]!);
    if (!place) return 'not-here';
    const result = await this.thread.run({
      pack: this.repo.store.localPath!(packKey(place.pack)),
      offset: place.offset,
      length: place.length,
      sha256,
      target: this.target.localPath(key),
    });
    // A failure that is not damage (a full disk, a dead thread) is the main thread's to meet again and to name.
    if ('error' in result || 'exists' in result) return 'not-here';
    if ('damaged' in result) {
      const reason = result.blob
        ? new CorruptBlobError(chunks[0]!, this.repo.location, result.damaged).message
        : result.damaged;
      return { damaged: reason };
    }
    return { written: result.written };
  }

  close(): Promise<void> {
    return this.thread.close();
  }
}
