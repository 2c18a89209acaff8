import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { createRedisClient } from '../lib/redis-client.ts';

export const QUEUE_NAME = 'generations';

export interface GenerationJobData {
  id: string;
}

/**
 * BullMQ needs `maxRetriesPerRequest: null` so that blocking commands survive a Redis restart or failover; its
 * workers duplicate this client for their blocking connections, Sentinels and TLS included.
 */
export function queueConnection(redisUrl: string): Redis {
  return createRedisClient(redisUrl, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

/** `prefix` separates queues that share one Redis (tests); production uses BullMQ's default. */
export function createQueue(connection: Redis, prefix?: string): Queue<GenerationJobData> {
  const queue = new Queue<GenerationJobData>(QUEUE_NAME, { connection, ...(prefix ? { prefix } : {}) });
  // A queue with no listener prints every connection error as a raw stack on stderr (a failover makes dozens);
  // the commands that fail reject to their callers, who report them.
  queue.on('error', () => {});
  return queue;
}

/**
 * Queues generations by id. The job id is the generation id, so adding one that is already waiting,
 * delayed or running is a no-op: the reconciler can re-add freely.
 */
export async function enqueue(queue: Queue<GenerationJobData>, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await queue.addBulk(
    ids.map((id) => ({
      name: 'generate',
      data: { id },
      opts: {
        jobId: id,
        removeOnComplete: true,
        removeOnFail: true,
        // Retries are decided by the worker against the attempt count in PostgreSQL; this only spaces them.
        attempts: 1000,
        backoff: { type: 'capped' },
      },
    })),
  );
}

/** Exponential backoff with jitter, capped: 1 s, 2 s, 4 s … at most `capMs`. */
export function retryDelay(attemptsMade: number, baseMs: number, capMs: number): number {
  const exponential = Math.min(capMs, baseMs * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(exponential * (0.5 + Math.random() * 0.5));
}

/** How long a request waits for Redis to take a job before it answers anyway (the job is added when Redis is back). */
export const ENQUEUE_WAIT_MS = 2000;

/**
 * `enqueue` for a request whose row is already committed: BullMQ's connection holds commands while Redis is away
 * (it must, for its blocking reads), so without a bound a request would wait for Redis to come back. Past the
 * bound it rejects; the held command still runs on reconnect, and the reconciler queues the row regardless.
 */
export async function enqueueWithin(
  queue: Queue<GenerationJobData>,
  ids: string[],
  waitMs = ENQUEUE_WAIT_MS,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Redis did not take the job within ${waitMs / 1000} s`)),
      waitMs,
    );
  });
  const queued = enqueue(queue, ids);
  // Settled later, after the deadline answered: its outcome no longer reaches anyone.
  queued.catch(() => {});
  try {
    await Promise.race([queued, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
