import { createWriteStream } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openDatabase } from '../../db/connection.ts';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import { deferred } from '../../lib/deferred.ts';
import { fsyncDir } from '../../lib/files.ts';
import { liveObjectKeys } from '../../objects/queries.ts';
import type { Repository } from '../repository/index.ts';
import { assertClientNotOlder, clientMajor, libpqConnection } from './postgres-client.ts';
import { type DumpedFile, dumpStreams } from './postgres-dump-streams.ts';
import { computeTableFacts, pinOutputSettings, planDigests } from './postgres-facts.ts';
import type { Loader } from './postgres-loader.ts';
import {
  comparable,
  type DumpedBlobs,
  fingerprintRanges,
  type PreviousRanges,
  previousRanges,
  type RangeFacts,
  recordFingerprints,
  tableDigests,
  unchangedRanges,
} from './postgres-range-reuse.ts';
import { type PlannedRange, planRanges, RANGE_BLOCKS, TABLE_DATA_MANIFEST } from './postgres-ranges.ts';
import { restoreDatabase } from './postgres-restore.ts';
import {
  type BackupContext,
  directoryStats,
  type PostgresDump,
  type PostgresFacts,
  type SnapshotSource,
  type TableFacts,
} from './types.ts';

/**
 * The PostgreSQL source of a snapshot: a custom-format dump streamed into the repository (uncompressed, so
 * content-defined chunking deduplicates it across runs, and `pg_restore -j` restores it in parallel) plus facts
 * taken in the very same snapshot, so a restore can prove it brought back exactly what was dumped (I7, I8).
 */

/**
 * Dumps one consistent point in time as streams: a read-only repeatable-read transaction exports its snapshot,
 * pg_dump imports it and writes a custom-format archive (uncompressed, so content-defined chunking deduplicates
 * it across runs) to its stdout, while the largest tables' rows stream from psql in block ranges in the same
 * snapshot (postgres-ranges.ts), and the facts and live object keys are read in the transaction itself. Each
 * stream goes to `consume` (the repository's chunker) as it is written: nothing is written to disk on the way.
 */
export async function streamDump<T>(
  databaseUrl: string,
  consume: (name: string, data: Readable) => Promise<T>,
  options: {
    onSpawn?: (pid: number) => void;
    /** Called as soon as the live object keys are read, while pg_dump may still be running. */
    onLiveObjectKeys?: (keys: string[]) => void;
    /** Blocks per range of a large table (RANGE_BLOCKS). */
    rangeBlocks?: number;
    /** The parent dump's ranges: those whose rows did not change are taken from it, not dumped again. */
    previous?: PreviousRanges<T> | undefined;
  } = {},
): Promise<PostgresDump & { files: DumpedFile<T>[] }> {
  const pgDump = findPostgresBinary('pg_dump');
  const client = clientMajor(pgDump);
  const conn = libpqConnection(databaseUrl);
  const sql = openDatabase(databaseUrl, { max: 1 });
  try {
    return await sql.begin('isolation level repeatable read read only', async (tx) => {
      await pinOutputSettings(tx);
      // The exporting transaction must outlive pg_dump even when facts are done long before.
      await tx`select set_config('idle_in_transaction_session_timeout', '0', true)`;
      const [server] = await tx<{ version: string; num: number; database: string }[]>`
        select current_setting('server_version') as version,
          current_setting('server_version_num')::int as num, current_database() as database`;
      if (!server) throw new Error('PostgreSQL did not say its version.');
      assertClientNotOlder('pg_dump', client, server.num);
      const [snapshot] = await tx<{ id: string }[]>`select pg_export_snapshot() as id`;
      const plan = await planRanges(tx, options.rangeBlocks ?? RANGE_BLOCKS);
      const digests = await planDigests(tx);
      // The objects' backup starts once these are read: before the tables' scans below, which take seconds on a
      // large table (I8 holds either way: the keys are this snapshot's).
      const liveKeys = await liveObjectKeys(tx);
      options.onLiveObjectKeys?.(liveKeys);
      const parentComparable =
        plan && options.previous && comparable(options.previous.manifest, plan.manifest);
      // With a parent to compare with, the ranges are fingerprinted before any is dumped (pg_dump runs meanwhile);
      // without one, while they are dumped.
      const fingerprinting = parentComparable ? fingerprintRanges(tx, plan.ranges, digests) : undefined;
      const unchanged = fingerprinting
        ? fingerprinting.then((facts) => unchangedRanges(plan!.ranges, facts, options.previous!))
        : Promise.resolve(new Map<PlannedRange, T>());
      const stopped = new AbortController();
      const streams = dumpStreams(
        pgDump,
        snapshot!.id,
        conn,
        plan,
        unchanged,
        consume,
        stopped.signal,
        options.onSpawn,
      );
      streams.catch(() => {}); // awaited below; a failure must not surface as unhandled meanwhile
      let tables: Record<string, TableFacts>;
      let rangeFacts: RangeFacts | undefined;
      try {
        rangeFacts = plan ? await (fingerprinting ?? fingerprintRanges(tx, plan.ranges, digests)) : undefined;
        tables = await computeTableFacts(tx, digests, rangeFacts && tableDigests(rangeFacts));
      } catch (error) {
        stopped.abort();
        await streams.catch(() => {});
        throw error;
      }
      const files = await streams;
      if (plan) {
        recordFingerprints(plan.ranges, rangeFacts!);
        const manifest = Readable.from([Buffer.from(JSON.stringify(plan.manifest))]);
        files.push({ name: TABLE_DATA_MANIFEST, consumed: await consume(TABLE_DATA_MANIFEST, manifest) });
      }
      const facts: PostgresFacts = {
        serverVersion: server.version,
        serverVersionNum: server.num,
        database: server.database,
        tables,
      };
      return { facts, liveObjectKeys: liveKeys, files };
    });
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** The dump's files written into `outDir` (fsynced, the folder too: a caller keeps them). */
export async function dumpPostgres(
  databaseUrl: string,
  outDir: string,
  options: { onSpawn?: (pid: number) => void; rangeBlocks?: number } = {},
): Promise<PostgresDump> {
  await mkdir(outDir, { recursive: true });
  const { files: _, ...dump } = await streamDump(
    databaseUrl,
    async (name, data) => {
      const file = path.join(outDir, name);
      await pipeline(data, createWriteStream(file));
      const handle = await open(file, 'r');
      await handle.sync().finally(() => handle.close());
    },
    options,
  );
  await fsyncDir(outDir);
  return dump;
}

/** The tree of a dump's files as the repository holds them: the postgres source's tree in a snapshot. */
export function writeDumpTree(repo: Repository, files: readonly DumpedFile<DumpedBlobs>[]): Promise<string> {
  return repo.writeTree(
    files.map(({ name, consumed }) => ({
      name,
      type: 'file' as const,
      mode: 0o600,
      mtimeMs: 0,
      size: consumed.size,
      chunks: consumed.chunks,
    })),
  );
}

/** The dump's bytes on their way to the chunker; every PROGRESS_BYTES of all its streams together is reported. */
async function* counted(
  data: Readable,
  ctx: BackupContext,
  total: { bytes: number; reported: number },
): AsyncGenerator<Buffer> {
  for await (const chunk of data as AsyncIterable<Buffer>) {
    total.bytes += chunk.length;
    if (total.bytes - total.reported >= PROGRESS_BYTES) {
      total.reported = total.bytes;
      ctx.progress('postgres', undefined, { bytes: total.bytes });
    }
    yield chunk;
  }
}

const PROGRESS_BYTES = 64 * 1024 * 1024;

/**
 * The database, dumped first: its snapshot also fixes which objects the backup must hold (I2, I8). Restored
 * into an empty database (recreated when `clear`), then verified table by table against the facts (I7).
 */
export function postgresSource(
  databaseUrl: string,
  loader?: Loader,
): SnapshotSource<PostgresFacts> & {
  /** The keys of live objects in the dump's database snapshot, once backup() has read them (before the dump ends). */
  readonly liveObjectKeys: string[];
  /** Settles when backup() has read the live object keys: resolved, or rejected when the dump failed first. */
  liveObjectKeysRead: () => Promise<void>;
} {
  let liveKeys: string[] = [];
  let keysRead = deferred();
  return {
    name: 'postgres',
    get liveObjectKeys() {
      return liveKeys;
    },
    liveObjectKeysRead: () => keysRead.promise,
    backup: async (ctx) => {
      keysRead = deferred();
      ctx.progress('postgres', 'dumping');
      try {
        const total = { bytes: 0, reported: 0 };
        const dump = await streamDump<DumpedBlobs>(
          databaseUrl,
          (_name, data) => ctx.repo.storeFile(counted(data, ctx, total)),
          {
            onLiveObjectKeys: (keys) => {
              liveKeys = keys;
              keysRead.resolve();
            },
            previous: await previousRanges(ctx.repo, ctx.parent?.trees['postgres']),
          },
        );
        const tree = await writeDumpTree(ctx.repo, dump.files);
        const sum = (pick: (stored: DumpedBlobs) => number, files = dump.files) =>
          files.reduce((n, file) => n + pick(file.consumed), 0);
        const read = dump.files.filter((file) => !file.unchanged);
        const stats = directoryStats({
          filesNew: read.length,
          filesChanged: 0,
          filesUnchanged: dump.files.length - read.length,
          dirs: 0,
          symlinks: 0,
          skipped: [],
          bytesRead: sum((stored) => stored.size, read),
          blobsAdded: sum((stored) => stored.blobsAdded),
          bytesAdded: sum((stored) => stored.bytesAdded),
        });
        return { tree, facts: dump.facts, stats };
      } catch (error) {
        keysRead.reject(error);
        throw error;
      }
    },
    restore: (ctx) => restoreDatabase(ctx, databaseUrl, loader),
  };
}
