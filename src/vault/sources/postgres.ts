import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase, type TransactionSql } from '../../db/connection.ts';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import { databaseOf } from '../../lib/connection-url.ts';
import { liveObjectKeys } from '../../objects/queries.ts';
import { dropAndRecreateDatabase, isDatabaseEmpty, withSql } from './postgres-admin.ts';
import { assertClientNotOlder, clientMajor, libpqConnection, run } from './postgres-client.ts';
import type { Loader } from './postgres-loader.ts';
import {
  directoryProgress,
  directoryStats,
  type PostgresDump,
  type PostgresFacts,
  RestoreVerificationError,
  type SnapshotSource,
  type TableFacts,
} from './types.ts';

/**
 * The PostgreSQL source of a snapshot: a directory-format dump (uncompressed, so content-defined chunking
 * deduplicates it across runs, and `pg_restore -j` restores it in parallel) plus facts taken in the very
 * same snapshot, so a restore can prove it brought back exactly what was dumped (I7, I8).
 */

export interface TableMismatch {
  table: string;
  /** Undefined: the table is in the target but was not in the backup. */
  expected: TableFacts | undefined;
  /** Undefined: the table was in the backup but is missing from the target. */
  actual: TableFacts | undefined;
}

const defaultJobs = () => Math.max(1, Math.min(4, os.availableParallelism()));

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Row text depends on session settings (time zone, date and interval style, bytea and money output):
 * pin them, so the same rows give the same digest at backup time and on whatever server verifies them.
 */
async function pinOutputSettings(tx: TransactionSql): Promise<void> {
  await tx`select set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true),
    set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '1', true),
    set_config('bytea_output', 'hex', true), set_config('lc_monetary', 'C', true),
    set_config('statement_timeout', '0', true)`;
}

/**
 * Facts of every ordinary table (not system, not temporary or unlogged, not owned by an extension, as pg_dump
 * skips their data): row count and an order-independent digest, the sum mod 2^64 of the first 64 bits
 * of md5(row text). One sequential scan per table, no sort.
 */
async function computeTableFacts(tx: TransactionSql): Promise<Record<string, TableFacts>> {
  const tables = await tx<{ schema: string; name: string }[]>`
    select n.nspname as schema, c.relname as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'r' and c.relpersistence = 'p'
      and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
      and not exists (select 1 from pg_depend d
        where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
    order by 1, 2`;
  const facts: Record<string, TableFacts> = {};
  for (const { schema, name } of tables) {
    // ONLY: rows of inheritance children are counted under the child, as pg_dump dumps them.
    const [row] = await tx.unsafe<{ rows: number; sum: string }[]>(
      `select count(*) as rows,
         coalesce(sum(('x' || substr(md5(row(r.*)::text), 1, 16))::bit(64)::bigint), 0)::text as sum
       from only ${quoteIdent(schema)}.${quoteIdent(name)} as r`,
    );
    const digest = BigInt.asUintN(64, BigInt(row!.sum));
    facts[`${schema}.${name}`] = { rows: Number(row!.rows), hash: digest.toString(16).padStart(16, '0') };
  }
  return facts;
}

/** Facts of a database as it is now (one read-only snapshot). */
export async function tableFacts(url: string): Promise<Record<string, TableFacts>> {
  return await withSql(url, (sql) =>
    sql.begin('isolation level repeatable read read only', async (tx) => {
      await pinOutputSettings(tx);
      // The database may hold what a dump brought: only built-in functions and operators are called here.
      await tx`select set_config('search_path', 'pg_catalog', true)`;
      return await computeTableFacts(tx);
    }),
  );
}

/** Compares a database with the facts of a backup; missing and extra tables are mismatches too (I7). */
export async function verifyPostgres(
  url: string,
  facts: PostgresFacts,
): Promise<{ ok: boolean; mismatches: TableMismatch[] }> {
  const actual = await tableFacts(url);
  const mismatches: TableMismatch[] = [];
  for (const table of new Set([...Object.keys(facts.tables), ...Object.keys(actual)])) {
    const want = facts.tables[table];
    const got = actual[table];
    if (want?.rows !== got?.rows || want?.hash !== got?.hash) {
      mismatches.push({ table, expected: want, actual: got });
    }
  }
  return { ok: mismatches.length === 0, mismatches };
}

/**
 * Dumps one consistent point in time: a read-only repeatable-read transaction exports its snapshot,
 * pg_dump (and each of its parallel workers) imports it, and the facts and live object keys are read in
 * the same transaction while pg_dump runs. `outDir` must not exist or be empty.
 */
export async function dumpPostgres(
  databaseUrl: string,
  outDir: string,
  options: {
    jobs?: number;
    onSpawn?: (pid: number) => void;
    /** Called as soon as the live object keys are read, while pg_dump may still be running. */
    onLiveObjectKeys?: (keys: string[]) => void;
  } = {},
): Promise<PostgresDump> {
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
        '--format=directory',
        '--compress=0',
        `--jobs=${options.jobs ?? defaultJobs()}`,
        // The dump is scratch: the repository makes its blobs durable, fsyncing here only costs time.
        '--no-sync',
        // Unlogged tables hold status, not data (PostgreSQL itself empties them after a crash).
        '--no-unlogged-table-data',
        '--no-password',
        `--file=${outDir}`,
        `--dbname=${conn.dbname}`,
      ];
      const dump = run(pgDump, args, conn.env, conn.password);
      dump.done.catch(() => {}); // awaited below; a failure must not surface as unhandled meanwhile
      if (dump.child.pid) options.onSpawn?.(dump.child.pid);
      let tables: Record<string, TableFacts>;
      let liveKeys: string[];
      try {
        tables = await computeTableFacts(tx);
        liveKeys = await liveObjectKeys(tx);
        options.onLiveObjectKeys?.(liveKeys);
      } catch (error) {
        dump.child.kill('SIGTERM');
        await dump.done.catch(() => {});
        throw error;
      }
      await dump.done;
      const facts: PostgresFacts = {
        serverVersion: server.version,
        serverVersionNum: server.num,
        database: server.database,
        tables,
      };
      return { facts, liveObjectKeys: liveKeys };
    });
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Restores a directory dump into an existing, empty database, in parallel; stops at the first error. The
 * dump is loaded as `loader` (postgres-loader.ts), never as a role that could reach the database host.
 */
export async function restorePostgres(
  dumpDir: string,
  targetUrl: string,
  loader: Pick<Loader, 'url' | 'role'>,
  options: { jobs?: number } = {},
): Promise<void> {
  if (!existsSync(path.join(dumpDir, 'toc.dat'))) {
    throw new Error(`${dumpDir} is not a PostgreSQL directory dump (it has no toc.dat).`);
  }
  const conn = libpqConnection(loader.url);
  // The target is marked read-only by default while a restore is unfinished (restore-markers.ts).
  // Commits wait only for the local disk: with BACKUP_SYNC no WAL receiver runs while a restore does.
  conn.env.PGOPTIONS =
    `${conn.env.PGOPTIONS ?? ''} -c default_transaction_read_only=off -c synchronous_commit=local`.trim();
  if (!(await isDatabaseEmpty(targetUrl))) {
    throw new Error(
      `The database ${databaseOf(targetUrl)} is not empty: restore into an empty one or recreate it first.`,
    );
  }
  const args = [
    `--jobs=${options.jobs ?? defaultJobs()}`,
    '--no-owner',
    '--no-acl',
    ...(loader.role ? [`--role=${loader.role}`] : []),
    '--exit-on-error',
    '--no-password',
    `--dbname=${conn.dbname}`,
    dumpDir,
  ];
  await run(findPostgresBinary('pg_restore'), args, conn.env, conn.password).done;
}

/** The dump as one plain SQL script (for the classic export), loadable with `psql -f` by any owner. */
export async function dumpToSql(dumpDir: string, outFile: string): Promise<void> {
  const args = ['--no-owner', '--no-acl', `--file=${outFile}`, dumpDir];
  await run(findPostgresBinary('pg_restore'), args, process.env, '').done;
}

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
      const dir = path.join(ctx.scratch, 'postgres');
      try {
        const dump = await dumpPostgres(databaseUrl, dir, {
          jobs: 2,
          onLiveObjectKeys: (keys) => {
            liveKeys = keys;
            keysRead.resolve();
          },
        });
        const { treeId, stats } = await ctx.repo.storeDirectory(dir, {
          onProgress: directoryProgress(ctx, 'postgres'),
        });
        return { tree: treeId, facts: dump.facts, stats: directoryStats(stats) };
      } catch (error) {
        keysRead.reject(error);
        throw error;
      }
    },
    restore: async (ctx) => {
      ctx.progress('postgres', 'restoring');
      const dumpDir = path.join(ctx.scratch, 'postgres');
      // Scratch: pg_restore reads it at once and a crash restores it again.
      await ctx.repo.restoreTree(ctx.tree, dumpDir, { durable: false });
      if (ctx.clear) {
        await dropAndRecreateDatabase(databaseUrl);
        await ctx.cleared();
      }
      if (!loader) throw new Error('A PostgreSQL restore needs its unprivileged loader.');
      await loader.prepare();
      await restorePostgres(dumpDir, databaseUrl, loader, { jobs: 2 });
      ctx.progress('postgres', 'verifying');
      // The facts were checked before anything was written (restore.ts): a restore is verified or refused.
      const verdict = await verifyPostgres(databaseUrl, ctx.facts!);
      if (!verdict.ok) {
        throw new RestoreVerificationError(
          `The restored database differs from the backup in ${verdict.mismatches.map((m) => m.table).join(', ')}.`,
        );
      }
      return { tables: Object.keys(ctx.facts!.tables).length, verified: true };
    },
  };
}
