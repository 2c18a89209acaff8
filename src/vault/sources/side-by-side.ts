import type { SnapshotSource } from './types.ts';

/**
 * Runs every source's step at once and returns the results by source name, in the sources' order. Every step
 * settles before a failure is reported (the first in that order), so nothing still writes when the caller
 * reacts to it: backups write the snapshot record only after all, restores leave their marks.
 */
export async function sideBySide<T>(
  sources: readonly SnapshotSource<unknown>[],
  step: (source: SnapshotSource<unknown>) => Promise<T>,
): Promise<Record<string, T>> {
  const settled = await Promise.allSettled(sources.map(step));
  const failed = settled.find((result) => result.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return Object.fromEntries(
    sources.map((source, i) => [source.name, (settled[i] as PromiseFulfilledResult<T>).value]),
  );
}
