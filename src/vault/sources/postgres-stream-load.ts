import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import { openDatabase, type Sql } from '../../db/connection.ts';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import {
  type ArchiveEntry,
  ArchiveReader,
  type ArchiveToc,
  dataBlocks,
  readArchiveToc,
} from './pgdump-archive.ts';
import { libpqConnection, run } from './postgres-client.ts';
import type { Loader } from './postgres-loader.ts';

/**
 * Loads a custom-format dump straight from the repository into an empty database, with no copy of the dump on
 * disk: pg_restore creates the schema from the archive's table of contents alone (a few kilobytes written to
 * scratch), the table data streams from the repository into `COPY … FROM STDIN` on `jobs` connections at once
 * (a large table's rows dealt out between them, whole lines each, so one table loads on every core), and
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

/** Rows are dealt out in pieces of this size: hundreds of rows per COPY message, little garbage at a time (1 MiB pieces and reads: 211 MB peak RSS loading 1.4 GB, 256 KiB pieces and 1 MiB reads: 160 MB). */
const PIECE_SIZE = 256 << 10;

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
  options: { jobs: number },
): Promise<StreamLoadResult> {
  const reader = new ArchiveReader(chunks);
  const read = await readArchiveToc(reader);
  if ('unsupported' in read) return { loaded: false, reason: read.unsupported };
  const plan = planLoad(read.toc);
  if (typeof plan === 'string') return { loaded: false, reason: plan };
  const schema = path.join(scratch, 'schema.pgdump');
  await writeFile(schema, read.toc.head, { mode: 0o600 });
  await pgRestore(loader, ['--section=pre-data', schema]);
  const sql = openDatabase(loader.url, { max: options.jobs, writable: true, localCommit: true });
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

/**
 * loadStreamed of a dump file, on a worker thread (postgres-load-worker.ts), so the caller's thread stays free.
 * The worker's own errors come back with their sentence; a worker that dies says so.
 */
export async function loadFileOnWorker(
  archive: string,
  loader: Pick<Loader, 'url' | 'role'>,
  scratch: string,
  jobs: number,
): Promise<StreamLoadResult> {
  const here = new URL(import.meta.url);
  // Run from source (tests, tsx), the worker needs the TypeScript loader too; built, it is plain JavaScript.
  const source = here.pathname.endsWith('.ts');
  const script = new URL(`./postgres-load-worker.${source ? 'ts' : 'js'}`, here);
  const workerData = { archive, loader: { url: loader.url, role: loader.role }, scratch, jobs };
  const worker = source
    ? new Worker(
        `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(script.href)}); });`,
        { eval: true, workerData },
      )
    : new Worker(script, { workerData });
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
  } finally {
    await worker.terminate();
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

/** What of a postgres.js query a COPY needs, `reject` included (see openLane). */
interface CopyQuery {
  reject: (error: unknown) => void;
  writable(): Promise<Writable>;
}

interface Lane {
  /** Starts `statement` on this lane unless it runs already, and sends `parts` (whole rows). */
  send(statement: string, parts: Buffer[]): Promise<void>;
  /** Ends the lane's COPY, if one runs, and waits for the server to take it. */
  end(): Promise<void>;
  /** Cancels the lane's COPY, if one runs (the server rolls it back). */
  abort(error: Error): void;
  release(): Promise<void>;
}

async function openLane(sql: Sql, role: string | undefined, encoding: string): Promise<Lane> {
  const conn = await sql.reserve();
  // As pg_restore sets up its sessions; search_path empty because the statements name their schemas.
  await conn.unsafe(
    `set client_encoding = '${encoding}'; set search_path = ''; set row_security = off; set statement_timeout = 0; set lock_timeout = 0`,
  );
  if (role) await conn.unsafe(`set role "${role.replaceAll('"', '""')}"`);
  let writable: Writable | undefined;
  let failure: Error | undefined;
  let drained: Promise<unknown> | undefined;
  let refused: Promise<never> = new Promise(() => {});
  return {
    async send(statement, parts) {
      if (!writable) {
        failure = undefined;
        let refuse!: (error: unknown) => void;
        refused = new Promise<never>((_, reject) => {
          refuse = reject;
        });
        refused.catch(() => {});
        const query = conn.unsafe(statement) as unknown as CopyQuery;
        // postgres.js 3.4 never settles a COPY's writable when the server rejects the rows after the last one
        // was sent (porsager/postgres#1173): the error reaches only the query, settled long before. Keep it.
        const reject = query.reject;
        query.reject = (error: unknown) => {
          failure ??= error as Error;
          refuse(failure);
          reject(error);
        };
        writable = await query.writable();
        writable.on('error', (error) => {
          failure ??= error;
        });
      }
      if (drained) await drained;
      drained = undefined;
      if (failure) throw failure;
      let full = false;
      for (const part of parts) full = !writable.write(part);
      if (full) {
        drained = once(writable, 'drain');
        // Rejects when the lane fails: awaited by the next send, or abandoned by end() and abort().
        drained.catch(() => {});
      }
    },
    async end() {
      if (!writable) return;
      const copying = writable;
      writable = undefined;
      drained = undefined;
      copying.end();
      await Promise.race([finished(copying), refused]).catch((error: unknown) => {
        throw failure ?? error;
      });
    },
    abort(error) {
      writable?.destroy(error);
      writable = undefined;
      drained = undefined;
    },
    async release() {
      conn.release();
    },
  };
}

/**
 * Sends one table's rows through the lanes: each piece's whole lines go to the next lane in turn (a row of
 * COPY text is one line: newlines inside values are escaped), the unfinished last line travels with the next.
 */
async function copyDealtOut(pieces: AsyncGenerator<Buffer>, statement: string, lanes: Lane[]): Promise<void> {
  let carry: Buffer[] = [];
  let turn = 0;
  try {
    for await (const piece of pieces) {
      const lastNewline = piece.lastIndexOf(10);
      if (lastNewline < 0) {
        carry.push(piece);
        continue;
      }
      const lane = lanes[turn++ % lanes.length]!;
      await lane.send(statement, [...carry, piece.subarray(0, lastNewline + 1)]);
      carry = lastNewline + 1 < piece.length ? [piece.subarray(lastNewline + 1)] : [];
    }
    // pg_dump ends every row with a newline: anything left is a row cut short, which COPY names.
    if (carry.length) await lanes[turn % lanes.length]!.send(statement, carry);
  } catch (error) {
    // Nothing of a table whose rows did not all arrive is committed.
    for (const lane of lanes) lane.abort(error as Error);
    throw error;
  }
  const ends = await Promise.allSettled(lanes.map((lane) => lane.end()));
  const failed = ends.find((end) => end.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
}
