import type { Readable } from 'node:stream';
import { type libpqConnection, run } from './postgres-client.ts';
import { dumpRanges, excludeDataArg, type PlannedRange, type planRanges } from './postgres-ranges.ts';
import { DUMP_ARCHIVE } from './postgres-restore.ts';

/** One file of a dump as its consumer stored it: the archive, the range manifest, or a range of rows. */
export interface DumpedFile<T> {
  name: string;
  consumed: T;
  /** A range taken from the parent dump, its rows unchanged. */
  unchanged?: boolean;
}

/**
 * pg_dump's archive (without the data of the tables dumped in ranges) and the ranges not `unchanged`, side by
 * side; the unchanged ones as the parent consumed them. The first failure (a consumer's, pg_dump's, a range's,
 * the fingerprints') stops everything else and is the one thrown.
 */
export async function dumpStreams<T>(
  pgDump: string,
  snapshot: string,
  conn: ReturnType<typeof libpqConnection>,
  plan: Awaited<ReturnType<typeof planRanges>>,
  unchanged: Promise<Map<PlannedRange, T>>,
  consume: (name: string, data: Readable) => Promise<T>,
  signal: AbortSignal,
  onSpawn: ((pid: number) => void) | undefined,
): Promise<DumpedFile<T>[]> {
  const args = [
    `--snapshot=${snapshot}`,
    '--format=custom',
    '--compress=0',
    // Unlogged tables hold status, not data (PostgreSQL itself empties them after a crash).
    '--no-unlogged-table-data',
    ...(plan?.manifest.tables.map(excludeDataArg) ?? []),
    '--no-password',
    `--dbname=${conn.dbname}`,
  ];
  const dump = run(pgDump, args, conn.env, conn.password, { streamStdout: true });
  if (dump.child.pid) onSpawn?.(dump.child.pid);
  const inner = new AbortController();
  // The first failure is the cause; what fails after it was stopped by it (pg_dump "terminated by user").
  let cause: { error: unknown } | undefined;
  const stop = () => {
    dump.child.kill('SIGTERM');
    inner.abort();
  };
  const failed = (error: unknown): never => {
    cause ??= { error };
    stop();
    throw error;
  };
  const dumping = dump.done.catch(failed);
  signal.addEventListener('abort', stop, { once: true });
  try {
    const consuming = consume(DUMP_ARCHIVE, dump.child.stdout!).catch(failed);
    const ranging = plan
      ? unchanged
          .then(async (taken) => {
            const dumped = await dumpRanges(
              plan.ranges.filter((range) => !taken.has(range)),
              snapshot,
              plan.manifest.encoding,
              conn,
              consume,
              inner.signal,
            );
            const byName = new Map(dumped.map((file) => [file.name, file]));
            return plan.ranges.map(
              (range): DumpedFile<T> =>
                taken.has(range)
                  ? { name: range.file, consumed: taken.get(range)!, unchanged: true }
                  : byName.get(range.file)!,
            );
          })
          .catch(failed)
      : Promise.resolve([]);
    // A consumer that fails (a full backup disk) stops pg_dump, which would otherwise block on its pipe; a dump
    // cut short ends its stream as a whole one does, so what was consumed is not the dump.
    const [, consumed, ranged] = await Promise.allSettled([dumping, consuming, ranging]);
    if (cause) throw cause.error;
    return [
      { name: DUMP_ARCHIVE, consumed: (consumed as PromiseFulfilledResult<T>).value },
      ...(ranged as PromiseFulfilledResult<DumpedFile<T>[]>).value,
    ];
  } finally {
    signal.removeEventListener('abort', stop);
  }
}
