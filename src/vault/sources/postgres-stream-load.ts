import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { openDatabase } from '../../db/connection.ts';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import {
  type ArchiveEntry,
  ArchiveReader,
  type ArchiveToc,
  dataBlocks,
  readArchiveToc,
} from './pgdump-archive.ts';
import { libpqConnection, run } from './postgres-client.ts';
import {
  copyDealtOut,
  copyRangeFiles,
  type OpenDumpFile,
  openLane,
  PIECE_SIZE,
} from './postgres-copy-lanes.ts';
import type { DumpFeed } from './postgres-dump-feed.ts';
import type { Loader } from './postgres-loader.ts';
import type { TableDataManifest } from './postgres-ranges.ts';

/**
 * Loads a custom-format dump straight from the repository into an empty database, with no copy of the dump on
 * disk: pg_restore creates the schema from the archive's table of contents alone (a few kilobytes written to
 * scratch), the table data streams from the repository into `COPY … FROM STDIN` on `jobs` connections at once
 * (a table's rows dealt out between them, whole lines each, so one table loads on every core), and the rows
 * of the tables dumped in block ranges (postgres-ranges.ts) follow from their own files, each such table frozen
 * on one connection, several at once (postgres-copy-lanes.ts), and
 * pg_restore then adds sequences' values, indexes, constraints and the rest in parallel. What this does not
 * read (another archive version, compressed data, large objects) is left whole to pg_restore by the caller.
 */

/** One identifier as pg_dump writes it: plain lower case, or double-quoted with "" inside. */
const IDENT = '(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")+")';
/** The COPY statement pg_dump records for a table's data, and nothing else. */
const COPY_STATEMENT = new RegExp(
  `^COPY (${IDENT}\\.${IDENT})( \\(${IDENT}(?:, ${IDENT})*\\))? FROM stdin;\\n?$`,
);
const ENCODING_STATEMENT = /^SET client_encoding = '([A-Za-z0-9_]+)';\n?$/;

export type StreamLoadResult = { loaded: true; tables: number } | { loaded: false; reason: string };

/** The COPY statement of a TABLE DATA entry, rebuilt from what was checked; undefined when it is not pg_dump's. */
export function copyStatementOf(entry: ArchiveEntry): string | undefined {
  const match = COPY_STATEMENT.exec(entry.copyStmt);
  if (!match) return undefined;
  return `COPY ${match[1]}${match[2] ?? ''} FROM STDIN`;
}

interface Plan {
  statements: Map<number, string>;
  encoding: string;
}

/** What the loader needs of the table of contents, or why it leaves the archive to pg_restore. */
function planLoad(toc: ArchiveToc): Plan | string {
  if (toc.compressed) return 'its data is compressed';
  const statements = new Map<number, string>();
  let encoding: string | undefined;
  for (const entry of toc.entries) {
    if (entry.desc === 'ENCODING') encoding = ENCODING_STATEMENT.exec(entry.defn)?.[1];
    if (!entry.hadDumper) continue;
    if (entry.desc !== 'TABLE DATA') return `it holds ${entry.desc}`;
    const statement = copyStatementOf(entry);
    if (!statement) return `the data of ${entry.namespace}.${entry.tag} is not a COPY`;
    statements.set(entry.dumpId, statement);
  }
  if (!encoding) return 'it names no client encoding';
  return { statements, encoding };
}

/**
 * Loads the archive whose bytes `chunks` yields into the empty database behind `loader`. Returns
 * `{ loaded: false }` having written nothing when the archive is one this loader leaves to pg_restore.
 */
export async function loadStreamed(
  chunks: AsyncIterator<Buffer>,
  loader: Pick<Loader, 'url' | 'role'>,
  scratch: string,
  options: { jobs: number; ranges?: { manifest: TableDataManifest; open: OpenDumpFile } | undefined },
): Promise<StreamLoadResult> {
  const reader = new ArchiveReader(chunks);
  const read = await readArchiveToc(reader);
  if ('unsupported' in read) return { loaded: false, reason: read.unsupported };
  const plan = planLoad(read.toc);
  if (typeof plan === 'string') return { loaded: false, reason: plan };
  if (options.ranges && options.ranges.manifest.encoding !== plan.encoding) {
    return { loaded: false, reason: 'its table ranges are in another encoding than its archive' };
  }
  const schema = path.join(scratch, 'schema.pgdump');
  await writeFile(schema, read.toc.head, { mode: 0o600 });
  await pgRestore(loader, ['--section=pre-data', schema]);
  const sql = openDatabase(loader.url, {
    max: options.jobs,
    writable: true,
    localCommit: true,
    noDelay: true,
  });
  let tables = 0;
  try {
    const lanes = await Promise.all(
      Array.from({ length: options.jobs }, () => openLane(sql, loader.role, plan.encoding)),
    );
    for await (const block of dataBlocks(reader, PIECE_SIZE)) {
      const statement = plan.statements.get(block.dumpId);
      if (!statement)
        throw new Error(`The dump holds data for entry ${block.dumpId}, which its contents do not list.`);
      await copyDealtOut(block.pieces, statement, lanes);
      tables++;
    }
    if (options.ranges) tables += await copyRangeFiles(options.ranges.manifest, options.ranges.open, lanes);
    await Promise.all(lanes.map((lane) => lane.release()));
  } catch (error) {
    // A lane may be inside a COPY that was cancelled or refused: closing its connection rolls that back.
    await sql.end({ timeout: 0 });
    throw error;
  }
  await sql.end({ timeout: 5 });
  // Sequence values (data section, no data block) and everything after the data, all but the data itself.
  const listed = await pgRestore(loader, ['--list', schema]);
  const list = path.join(scratch, 'schema.list');
  await writeFile(
    list,
    listed
      .split('\n')
      .filter((line) => !/^\d+; \d+ \d+ TABLE DATA /.test(line))
      .join('\n'),
  );
  await pgRestore(loader, [
    `--jobs=${options.jobs}`,
    '--section=data',
    '--section=post-data',
    `--use-list=${list}`,
    schema,
  ]);
  return { loaded: true, tables };
}

/** Where the loading thread reads a dump: a folder, or a feed from the repository (postgres-dump-feed.ts). */
export type DumpFiles = { dir: string } | { feed: DumpFeed };

/**
 * loadStreamed of a dump's archive `archive` and its range files, on a worker thread (postgres-load-worker.ts),
 * so the caller's thread stays free. The worker's own errors come back with their sentence; a worker that dies
 * says so; a feed's own failure (a damaged blob) is thrown as the feed met it.
 */
export async function loadOnWorker(
  files: DumpFiles,
  archive: string,
  loader: Pick<Loader, 'url' | 'role'>,
  scratch: string,
  options: { jobs: number; ranges?: TableDataManifest | undefined },
): Promise<StreamLoadResult> {
  const here = new URL(import.meta.url);
  // Run from source (tests, tsx), the worker needs the TypeScript loader too; built, it is plain JavaScript.
  const source = here.pathname.endsWith('.ts');
  const script = new URL(`./postgres-load-worker.${source ? 'ts' : 'js'}`, here);
  const feed = 'feed' in files ? files.feed : undefined;
  const workerData = {
    archive,
    dir: 'dir' in files ? files.dir : undefined,
    feed: feed?.port,
    loader: { url: loader.url, role: loader.role },
    scratch,
    jobs: options.jobs,
    ranges: options.ranges,
  };
  const transferList = feed ? [feed.port] : [];
  const worker = source
    ? new Worker(
        `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(script.href)}); });`,
        { eval: true, workerData, transferList },
      )
    : new Worker(script, { workerData, transferList });
  try {
    return await new Promise<StreamLoadResult>((resolve, reject) => {
      worker.once(
        'message',
        (message: { result?: StreamLoadResult; error?: { name: string; message: string } }) => {
          if (message.result) return resolve(message.result);
          reject(Object.assign(new Error(message.error?.message), { name: message.error?.name ?? 'Error' }));
        },
      );
      worker.once('error', reject);
      worker.once('exit', (code) =>
        reject(new Error(`The database load stopped before it finished (exit code ${code}).`)),
      );
    });
  } catch (error) {
    throw feed?.failure() ?? error;
  } finally {
    await worker.terminate();
    feed?.close();
  }
}

/** pg_restore into the loader's database, as in restorePostgres; resolves to its stdout (a --list). */
export async function pgRestore(loader: Pick<Loader, 'url' | 'role'>, args: string[]): Promise<string> {
  const conn = libpqConnection(loader.url);
  // The target is marked read-only by default while a restore is unfinished (restore-markers.ts).
  // Commits wait only for the local disk: with BACKUP_SYNC no WAL receiver runs while a restore does.
  conn.env.PGOPTIONS =
    `${conn.env.PGOPTIONS ?? ''} -c default_transaction_read_only=off -c synchronous_commit=local`.trim();
  const listing = args.includes('--list');
  const common = listing
    ? []
    : [
        '--no-owner',
        '--no-acl',
        ...(loader.role ? [`--role=${loader.role}`] : []),
        '--exit-on-error',
        '--no-password',
        `--dbname=${conn.dbname}`,
      ];
  return await run(findPostgresBinary('pg_restore'), [...common, ...args], conn.env, conn.password).done;
}
