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
