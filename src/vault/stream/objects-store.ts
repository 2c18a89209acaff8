import type { BlobStore } from '../../blobstore/blobstore.ts';
import type { Config } from '../../config/config.ts';
import {
  compactObjectsJournal,
  type Repository,
  RepositoryNotFoundError,
  type StreamedObject,
  writeObjectsJournal,
} from '../repository/index.ts';
import { storeObject } from '../sources/objects.ts';
import { localTarget, openRepository, resolveTargets, type Target } from '../targets.ts';

/**
 * Opens a target's repository for streaming, creating it when missing. A new offsite repository is made like
 * the local one (same keys and chunker), so the same object is the same blobs in both and snapshots copied
 * between them stay readable.
 */
export async function openStreamRepository(config: Config, target: Target): Promise<Repository> {
  if (!target.offsite) return await openRepository(target, config, { create: true });
  try {
    return await openRepository(target, config);
  } catch (error) {
    if (!(error instanceof RepositoryNotFoundError)) throw error;
    const like = await openRepository(localTarget(config), config, { create: true });
    return await openRepository(target, config, { create: true, like });
  }
}

/** The configured targets, local first (an offsite target without a password is refused here, as for backups). */
export function streamTargets(config: Config): Target[] {
  return resolveTargets(config);
}

const STREAM_CONCURRENCY = 4;

/** The object itself (missing from the object store, or damaged), not the target, stops it being streamed. */
export class StreamedObjectError extends Error {
  override name = 'StreamedObjectError';
}

/**
 * Stores one object into the repository and returns what the journal records of it. Its bytes are hashed
 * on the way and must match the SHA-256 in its key. The chunks the repository's cached index claimed to
 * hold are checked on the target itself (a prune by another process may have removed them), and stored
 * again when missing: a journal never names a blob that is not there.
 */
export async function streamOneObject(
  repo: Repository,
  objects: BlobStore,
  key: string,
): Promise<StreamedObject> {
  if (!(await objects.head(key))) {
    throw new StreamedObjectError(`The object ${key} is not in the object store, so it cannot be streamed.`);
  }
  let stored = await storeObject(repo, objects, key);
  if (stored.blobsAdded < stored.chunks.length) {
    let missing = false;
    for (const id of stored.chunks) {
      if (await repo.blobExists(id)) continue;
      repo.index.forget(id);
      missing = true;
    }
    if (missing) stored = await storeObject(repo, objects, key);
  }
  const expected = /([0-9a-f]{64})\.[a-z0-9]+$/.exec(key)?.[1];
  if (expected && expected !== stored.sha256) {
    throw new StreamedObjectError(
      `The object ${key} in the object store does not hash to the SHA-256 in its name: it is damaged and was not streamed.`,
    );
  }
  return { key, sha256: stored.sha256, size: stored.size, chunks: stored.chunks };
}

/** Journal records written through each repository since its journal was last counted. */
const writesSinceCompaction = new WeakMap<Repository, number>();

/** Counts the journal (a listing) on the first batch and every 64th after it, and merges it when long. */
async function compactNowAndThen(repo: Repository): Promise<void> {
  const writes = writesSinceCompaction.get(repo);
  if (writes !== undefined && writes < 64) {
    writesSinceCompaction.set(repo, writes + 1);
    return;
  }
  writesSinceCompaction.set(repo, 0);
  await compactObjectsJournal(repo);
}

/**
 * Stores the objects of a batch under a shared repository lock (prune cannot remove a blob between our
 * check and our journal), then writes their journal record. Keys that fail are returned, not thrown: one
 * damaged or missing object must not hold back the others.
 */
export async function storeObjectsBatch(
  repo: Repository,
  objects: BlobStore,
  keys: string[],
  watermark: (stored: StreamedObject[]) => Promise<Date | undefined>,
): Promise<{ stored: StreamedObject[]; failed: Array<{ key: string; error: Error }> }> {
  const lock = await repo.lock({ exclusive: false, refreshEveryMs: 0 });
  try {
    const stored: StreamedObject[] = [];
    const failed: Array<{ key: string; error: Error }> = [];
    // A few at a time: an offsite target catching up after an outage is bound by round trips, not bytes.
    for (let i = 0; i < keys.length; i += STREAM_CONCURRENCY) {
      await Promise.all(
        keys.slice(i, i + STREAM_CONCURRENCY).map(async (key) => {
          try {
            stored.push(await streamOneObject(repo, objects, key));
          } catch (error) {
            failed.push({ key, error: error as Error });
          }
        }),
      );
    }
    if (stored.length > 0) {
      const w = await watermark(stored);
      await writeObjectsJournal(repo, {
        version: 1,
        time: new Date().toISOString(),
        ...(w ? { watermark: w.toISOString() } : {}),
        objects: stored,
      });
      await compactNowAndThen(repo);
    }
    return { stored, failed };
  } finally {
    // A target that just failed may refuse the release too; the lock then goes stale on its own.
    await lock.release().catch(() => {});
  }
}
