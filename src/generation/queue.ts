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
