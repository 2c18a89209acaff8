import { Worker } from 'node:worker_threads';
import type { BlobStore } from '../../blobstore/blobstore.ts';
import { packKey } from '../repository/format.ts';
import { CorruptBlobError, type Repository } from '../repository/index.ts';

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
  private readonly waiting = new Map<number, (result: ObjectTaskResult) => void>();
  private next = 0;
  /** Set once the worker failed or ended: every object is then the main thread's. */
  private gone = false;

  private constructor(
    private readonly repo: Repository,
    private readonly target: BlobStore & { localPath(key: string): string },
    private readonly worker: Worker,
  ) {
    worker.on('message', (result: ObjectTaskResult) => {
      this.waiting.get(result.n)?.(result);
      this.waiting.delete(result.n);
    });
    const fail = (reason: string) => {
      this.gone = true;
      for (const settle of this.waiting.values()) settle({ n: -1, error: reason });
      this.waiting.clear();
    };
    worker.on('error', (error) => fail(error.message));
    worker.on('exit', () => fail('the worker thread ended'));
  }

  /** A thread for this restore; undefined when the repository or the target is not a folder. */
  static start(repo: Repository, target: BlobStore): ObjectRestoreThread | undefined {
    if (!repo.store.localPath || !target.localPath) return undefined;
    const here = new URL(import.meta.url);
    // Run from source (tests, tsx), the worker needs the TypeScript loader too; built, it is plain JavaScript.
    const source = here.pathname.endsWith('.ts');
    const script = new URL(`./objects-restore-worker.${source ? 'ts' : 'js'}`, here);
    const workerData = { key: repo.codec.decodingKey, limit: repo.blobLimit };
    // A small young generation: a buffer's memory goes back when its object is collected, and young collections
    // then come often enough to keep the restore's peak memory under 300 MB with this thread (263-278 MB, 3 runs).
    const resourceLimits = { maxYoungGenerationSizeMb: 2 };
    const worker = source
      ? new Worker(
          `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(script.href)}); });`,
          { eval: true, workerData, resourceLimits },
        )
      : new Worker(script, { workerData, resourceLimits });
    return new ObjectRestoreThread(repo, target as BlobStore & { localPath(key: string): string }, worker);
  }

  /** Restores one object on the thread, or says it is the main thread's ('not-here'), even after a failure here. */
  async restore(key: string, chunks: readonly string[], sha256: string | undefined): Promise<ThreadOutcome> {
    if (this.gone || chunks.length !== 1 || !sha256) return 'not-here';
    const place = await this.repo.index.location(chunks[0]!);
    if (!place) return 'not-here';
    const n = this.next++;
    const task: ObjectTask = {
      n,
      pack: this.repo.store.localPath!(packKey(place.pack)),
      offset: place.offset,
      length: place.length,
      sha256,
      target: this.target.localPath(key),
    };
    const result = await new Promise<ObjectTaskResult>((resolve) => {
      this.waiting.set(n, resolve);
      this.worker.postMessage(task);
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

  async close(): Promise<void> {
    this.worker.postMessage('close');
    await this.worker.terminate();
  }
}
