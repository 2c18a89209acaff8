import type { BlobStore } from '../../blobstore/blobstore.ts';
import type { Config } from '../../config/config.ts';
import type { Sql } from '../../db/connection.ts';
import { sleepUnlessAborted } from '../../lib/process.ts';
import {
  markObjectsStreamed,
  OBJECT_STREAM_CHANNEL,
  pendingObjects,
  recordStreamTargetHealth,
  registerStreamTargets,
  settleDeletedEntries,
  streamWatermarks,
} from '../../objects/stream-queue.ts';
import { type Repository, type StreamedObject, writeObjectsStreamState } from '../repository/index.ts';
import type { Target } from '../targets.ts';
import {
  openStreamRepository,
  StreamedObjectError,
  storeObjectsBatch,
  streamTargets,
} from './objects-store.ts';

export type ObjectStreamEvent =
  | { type: 'streamed'; target: string; objects: number; watermark: Date | undefined; ms: number }
  | { type: 'object-failed'; target: string; key: string; error: string }
  | { type: 'target-failed'; target: string; error: string; retryInMs: number }
  | { type: 'target-ok'; target: string };

export interface ObjectStreamOptions {
  config: Config;
  sql: Sql;
  /** The object store the index rows refer to. */
  objects: BlobStore;
  /** Streaming stops (between steps) when this aborts; runObjectStream then resolves. */
  signal: AbortSignal;
  onProgress?: (event: ObjectStreamEvent) => void;
  /** Entries taken per batch; default 64. */
  batchSize?: number;
  /** The fallback poll when no notification arrives; default 2000 ms. */
  pollMs?: number;
  /**
   * How often an idle target's state record is rewritten with the advancing watermark: by default 250 ms on the
   * local target (a restore of the newest moment stops there, so its age is lost time for the database too)
   * and 1000 ms offsite (a request each).
   */
  stateEveryMs?: number;
  /** The shortest time between the starts of two batches on a target, unless one was full; default 500 ms. */
  batchEveryMs?: number;
}

const MAX_BACKOFF_MS = 30_000;
const BATCH_EVERY_MS = 500;

/** A wake-up that is never lost: a notification while the loop works makes its next wait return at once. */
class Wakeup {
  private pending = false;
  private waiter: (() => void) | undefined;

  notify(): void {
    this.pending = true;
    this.waiter?.();
  }

  wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.pending || signal.aborted) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.waiter = undefined;
        this.pending = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.waiter = done;
    });
  }
}

/**
 * Streams every queued object to every configured target until `signal` aborts (continuous protection,
 * I11). Each target has its own loop, so a dead offsite target never holds back the local one; a failing
 * target is reported and retried with backoff, never fatal. Per batch, in this order (each step safe to
 * crash after, and to repeat): the objects' bytes, the journal record naming them with the watermark, the
 * target's progress in PostgreSQL, the state record. Woken by NOTIFY when entries commit, with a slow poll;
 * batches start at most every 500 ms, so a burst of commits is taken together.
 */
export async function runObjectStream(options: ObjectStreamOptions): Promise<void> {
  const { sql, config } = options;
  const targets = streamTargets(config);
  const wakeups = targets.map(() => new Wakeup());
  const wakeAll = () => {
    for (const wakeup of wakeups) wakeup.notify();
  };
  const listener = await sql.listen(OBJECT_STREAM_CHANNEL, wakeAll, wakeAll);
  try {
    await registerStreamTargets(
      sql,
      targets.map((t) => t.name),
    );
    await Promise.all(targets.map((target, i) => targetLoop(options, targets, target, wakeups[i]!)));
  } finally {
    await listener.unlisten().catch(() => {});
  }
}

async function targetLoop(
  options: ObjectStreamOptions,
  targets: Target[],
  target: Target,
  wakeup: Wakeup,
): Promise<void> {
  const { config, signal } = options;
  const names = targets.map((t) => t.name);
  let repo: Repository | undefined;
  let backoff = 0;
  let healthy = false;
  let lastState = 0;
  const stateEveryMs = options.stateEveryMs ?? (target.offsite ? 1000 : 250);
  const batchEveryMs = options.batchEveryMs ?? BATCH_EVERY_MS;
  let batchStarted = 0;
  while (!signal.aborted) {
    try {
      repo ??= await openStreamRepository(config, target);
      batchStarted = Date.now();
      const handled = await streamBatch(options, names, target.name, repo);
      if (handled.failedAll) throw handled.failedAll;
      if (Date.now() - lastState >= stateEveryMs || handled.streamed > 0) {
        await writeState(options.sql, target.name, repo);
        lastState = Date.now();
      }
      if (!healthy) {
        // Also clears a failure recorded by an earlier run of the streamer.
        await recordStreamTargetHealth(options.sql, target.name, undefined);
        if (backoff > 0) options.onProgress?.({ type: 'target-ok', target: target.name });
        healthy = true;
      }
      backoff = 0;
      // A full batch means more are waiting; one that stored nothing (objects missing from the store) waits.
      if (handled.taken < (options.batchSize ?? 64) || handled.streamed === 0) {
        await wakeup.wait(Math.min(options.pollMs ?? 2000, stateEveryMs), signal);
        // Under load uploads notify one after another: answering each at once put this loop's queries, reads and
        // fsyncs beside every next request (request p50 1.4x of no streaming; 1.04x with batches 500 ms apart,
        // docs/benchmarks.md). A batch starts at most every batchEveryMs, however often they notify; the
        // objects' recovery point is that much older at most.
        await sleepUnlessAborted(Math.max(0, batchStarted + batchEveryMs - Date.now()), signal);
      }
    } catch (error) {
      repo = undefined;
      healthy = false;
      // The local target fails mostly on a full disk, freed at any moment: a cheap retry every 2 s at most.
      backoff = Math.min(target.offsite ? MAX_BACKOFF_MS : 2_000, Math.max(250, backoff * 2));
      const message = (error as Error).message;
      await recordStreamTargetHealth(options.sql, target.name, message).catch(() => {});
      options.onProgress?.({
        type: 'target-failed',
        target: target.name,
        error: message,
        retryInMs: backoff,
      });
      await sleepUnlessAborted(backoff, signal);
    }
  }
  // A clean stop leaves the newest watermark behind, so restoring the newest moment keeps all that was shipped.
  if (repo) {
    await streamBatch(options, names, target.name, repo).catch(() => {});
    await writeState(options.sql, target.name, repo).catch(() => {});
  }
}

/** One batch for one target; how many entries it took and stored. */
async function streamBatch(
  options: ObjectStreamOptions,
  names: string[],
  target: string,
  repo: Repository,
): Promise<{ taken: number; streamed: number; failedAll?: Error }> {
  const started = Date.now();
  const entries = await pendingObjects(options.sql, target, options.batchSize ?? 64);
  if (entries.length === 0) return { taken: 0, streamed: 0 };
  const keys = [...new Set(entries.map((entry) => entry.key))];
  const idsOf = (objects: StreamedObject[]) => {
    const held = new Set(objects.map((object) => object.key));
    return entries.filter((entry) => held.has(entry.key)).map((entry) => entry.id);
  };
  let watermark: Date | undefined;
  const { stored, failed } = await storeObjectsBatch(repo, options.objects, keys, async (stored) => {
    // The batch's entries count as held: their bytes are stored and this journal record names them.
    const held = { target, ids: idsOf(stored) };
    watermark = (await streamWatermarks(options.sql, [target], held))[0]?.recoverableUntil;
    return watermark;
  });
  const unstreamable = failed.filter((f) => f.error instanceof StreamedObjectError).map((f) => f.key);
  const settled = await settleDeletedEntries(options.sql, target, unstreamable, names);
  for (const { key, error } of failed) {
    options.onProgress?.({ type: 'object-failed', target, key, error: error.message });
  }
  if (stored.length === 0 && settled > 0) return { taken: entries.length, streamed: 0 };
  if (stored.length === 0) {
    // Nothing stored because of the target (not because objects are missing or damaged): back off.
    const targetError = failed.find((f) => !(f.error instanceof StreamedObjectError))?.error;
    return { taken: entries.length, streamed: 0, ...(targetError ? { failedAll: targetError } : {}) };
  }
  await markObjectsStreamed(options.sql, target, idsOf(stored), names);
  options.onProgress?.({
    type: 'streamed',
    target,
    objects: stored.length,
    watermark,
    ms: Date.now() - started,
  });
  return { taken: entries.length, streamed: stored.length };
}

/** Rewrites the target's state record with its watermark now (it advances while nothing is pending). */
async function writeState(sql: Sql, target: string, repo: Repository): Promise<void> {
  const [backlog] = await streamWatermarks(sql, [target]);
  if (!backlog?.recoverableUntil) return;
  await writeObjectsStreamState(repo, {
    version: 1,
    time: new Date().toISOString(),
    watermark: backlog.recoverableUntil.toISOString(),
  });
}
