import { createWriteStream } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openDatabase } from '../../db/connection.ts';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import { liveObjectKeys } from '../../objects/queries.ts';
import { assertClientNotOlder, clientMajor, libpqConnection, run } from './postgres-client.ts';
import { computeTableFacts, pinOutputSettings } from './postgres-facts.ts';
import type { Loader } from './postgres-loader.ts';
import { DUMP_ARCHIVE, restoreDatabase } from './postgres-restore.ts';
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
 * Dumps one consistent point in time as a stream: a read-only repeatable-read transaction exports its
 * snapshot, pg_dump imports it and writes a custom-format archive (uncompressed, so content-defined chunking
 * deduplicates it across runs; `pg_restore -j` still restores it in parallel) to its stdout, which `consume`
 * reads while the facts and live object keys are read in the same transaction. Nothing is written to disk on
 * the way: the archive's bytes go from pg_dump to `consume` (the repository's chunker).
 */
export async function streamDump<T>(
  databaseUrl: string,
  consume: (archive: Readable) => Promise<T>,
  options: {
    onSpawn?: (pid: number) => void;
    /** Called as soon as the live object keys are read, while pg_dump may still be running. */
    onLiveObjectKeys?: (keys: string[]) => void;
  } = {},
): Promise<PostgresDump & { consumed: T }> {
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
      const args = [
        `--snapshot=${snapshot!.id}`,
        '--format=custom',
        '--compress=0',
        // Unlogged tables hold status, not data (PostgreSQL itself empties them after a crash).
        '--no-unlogged-table-data',
        '--no-password',
        `--dbname=${conn.dbname}`,
      ];
      const dump = run(pgDump, args, conn.env, conn.password, { streamStdout: true });
      dump.done.catch(() => {}); // awaited below; a failure must not surface as unhandled meanwhile
      if (dump.child.pid) options.onSpawn?.(dump.child.pid);
      const stop = () => dump.child.kill('SIGTERM');
      // A consumer that fails (a full backup disk) stops pg_dump, which would otherwise block on the pipe.
      const consuming = consume(dump.child.stdout!).catch((error: unknown) => {
        stop();
        throw error;
      });
      consuming.catch(() => {});
      let tables: Record<string, TableFacts>;
      let liveKeys: string[];
      try {
        tables = await computeTableFacts(tx);
        liveKeys = await liveObjectKeys(tx);
        options.onLiveObjectKeys?.(liveKeys);
      } catch (error) {
        stop();
        await Promise.allSettled([dump.done, consuming]);
        throw error;
      }
      const [dumped, consumed] = await Promise.allSettled([dump.done, consuming]);
      // The consumer's failure first: it stopped pg_dump. Else pg_dump's: a dump cut short ends the stream as
      // a whole one does, so what was consumed is not the dump.
      if (consumed.status === 'rejected') throw consumed.reason;
      if (dumped.status === 'rejected') throw dumped.reason;
      const facts: PostgresFacts = {
        serverVersion: server.version,
        serverVersionNum: server.num,
        database: server.database,
        tables,
      };
      return { facts, liveObjectKeys: liveKeys, consumed: consumed.value };
    });
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** The dump written into `outDir` as DUMP_ARCHIVE (fsynced: a caller keeps it). */
export async function dumpPostgres(
  databaseUrl: string,
  outDir: string,
  options: { onSpawn?: (pid: number) => void } = {},
): Promise<PostgresDump> {
  await mkdir(outDir, { recursive: true });
  const file = path.join(outDir, DUMP_ARCHIVE);
  const { consumed: _, ...dump } = await streamDump(
    databaseUrl,
    async (archive) => {
      await pipeline(archive, createWriteStream(file));
      const handle = await open(file, 'r');
      await handle.sync().finally(() => handle.close());
    },
    options,
  );
  return dump;
}

/** The dump's bytes on their way to the chunker, reported every PROGRESS_BYTES. */
async function* counted(archive: Readable, ctx: BackupContext): AsyncGenerator<Buffer> {
  let bytes = 0;
  let reported = 0;
  for await (const chunk of archive as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes - reported >= PROGRESS_BYTES) {
      reported = bytes;
      ctx.progress('postgres', undefined, { bytes });
    }
    yield chunk;
  }
}

const PROGRESS_BYTES = 64 * 1024 * 1024;

/** A promise settled from outside; its rejection is handled for the callers that never wait on it. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void } {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

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
        const dump = await streamDump(databaseUrl, (archive) => ctx.repo.storeFile(counted(archive, ctx)), {
          onLiveObjectKeys: (keys) => {
            liveKeys = keys;
            keysRead.resolve();
          },
        });
        const stored = dump.consumed;
        const tree = await ctx.repo.writeTree([
          {
            name: DUMP_ARCHIVE,
            type: 'file',
            mode: 0o600,
            mtimeMs: 0,
            size: stored.size,
            chunks: stored.chunks,
          },
        ]);
        const stats = directoryStats({
          filesNew: 1,
          filesChanged: 0,
          filesUnchanged: 0,
          dirs: 0,
          symlinks: 0,
          skipped: [],
          bytesRead: stored.size,
          blobsAdded: stored.blobsAdded,
          bytesAdded: stored.bytesAdded,
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
