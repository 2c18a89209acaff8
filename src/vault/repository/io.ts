export { readAll } from '../../blobstore/blobstore.ts';

/** Runs at most `limit` of the functions passed to it at once; the rest wait their turn in order. */
export function limiter(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`Concurrency must be a positive integer, got ${limit}.`);
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
    try {
      return await task();
    } finally {
      // The slot passes straight to the next waiter, so `active` never overshoots.
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

/**
 * A stream's bytes when there are at most `max` of them; undefined (the rest left unread) when there are more,
 * so a record file grown huge is refused without being held in memory.
 */
export async function readAtMost(
  stream: NodeJS.ReadableStream & { destroy?: () => void },
  max: number,
): Promise<Buffer | undefined> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of stream) {
    const bytes = typeof part === 'string' ? Buffer.from(part) : (part as Buffer);
    size += bytes.length;
    if (size > max) {
      stream.destroy?.();
      return undefined;
    }
    parts.push(bytes);
  }
  return Buffer.concat(parts, size);
}

/** The first `bytes` bytes of a stream (fewer when it is shorter); the rest is left unread. */
export async function readHead(
  stream: NodeJS.ReadableStream & { destroy?: () => void },
  bytes: number,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of stream) {
    const chunk = typeof part === 'string' ? Buffer.from(part) : (part as Buffer);
    parts.push(chunk);
    size += chunk.length;
    if (size >= bytes) break;
  }
  stream.destroy?.();
  return Buffer.concat(parts, size).subarray(0, bytes);
}
