import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { openDatabase, type Sql } from '../../db/connection.ts';
import type { Loader } from './postgres-loader.ts';
import {
  copyFrozenStatement,
  qualifiedName,
  type RangeTable,
  type TableDataManifest,
} from './postgres-ranges.ts';

/**
 * Lanes into an empty database: connections that each run one `COPY … FROM STDIN` at a time, over which a
 * table's rows are dealt out whole lines at a time, so one large table loads on every core.
 */

/** Rows are dealt out in pieces of this size: hundreds of rows per COPY message, little garbage at a time (1 MiB pieces and reads: 211 MB peak RSS loading 1.4 GB, 256 KiB pieces and 1 MiB reads: 160 MB). */
export const PIECE_SIZE = 256 << 10;

/** What of a postgres.js query a COPY needs, `reject` included (see openLane). */
interface CopyQuery {
  reject: (error: unknown) => void;
  writable(): Promise<Writable>;
}

export interface Lane {
  /** Starts `statement` on this lane unless it runs already, and sends `parts` (whole rows). */
  send(statement: string, parts: Buffer[]): Promise<void>;
  /** Ends the lane's COPY, if one runs, and waits for the server to take it. */
  end(): Promise<void>;
  /** Cancels the lane's COPY, if one runs (the server rolls it back). */
  abort(error: Error): void;
  /** Runs a statement that is not a COPY (`begin`, `commit`…) on the lane's connection. */
  run(statement: string): Promise<void>;
  release(): Promise<void>;
}

export async function openLane(sql: Sql, role: string | undefined, encoding: string): Promise<Lane> {
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
    async run(statement) {
      await conn.unsafe(statement);
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
export async function copyDealtOut(
  pieces: AsyncGenerator<Buffer>,
  statement: string,
  lanes: Lane[],
): Promise<void> {
  await copyThrough(statement, lanes, async () => {
    let carry: Buffer[] = [];
    let turn = 0;
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
  });
}

/** Sends a file's rows, text or COPY's binary format (no line ends to cut at), to one lane as they come. */
async function copyWhole(pieces: AsyncGenerator<Buffer>, statement: string, lane: Lane): Promise<void> {
  await copyThrough(statement, [lane], async () => {
    for await (const piece of pieces) await lane.send(statement, [piece]);
  });
}

/** Runs `send` and ends the lanes' COPY; nothing of a table whose rows did not all arrive is committed. */
async function copyThrough(statement: string, lanes: Lane[], send: () => Promise<void>): Promise<void> {
  try {
    await send();
  } catch (error) {
    for (const lane of lanes) lane.abort(error as Error);
    throw namingTable(statement, error);
  }
  const ends = await Promise.allSettled(lanes.map((lane) => lane.end()));
  const failed = ends.find((end) => end.status === 'rejected');
  if (failed) throw namingTable(statement, (failed as PromiseRejectedResult).reason);
}

/** The server's error (which does not say where) with the table whose rows it refused. */
function namingTable(statement: string, error: unknown): Error {
  const table = /^COPY (.+?)(?: \(| FROM)/.exec(statement)?.[1] ?? 'a table';
  const message = error instanceof Error ? error.message : String(error);
  return new Error(`The rows of ${table} could not be loaded: ${message}`, { cause: error });
}

/** Opens one of a dump's files by name: from a folder (filesIn) or streamed from the repository. */
export type OpenDumpFile = (name: string) => AsyncGenerator<Buffer>;

/**
 * Loads the range files a dump's manifest names (postgres-ranges.ts): each table on one lane, emptied and loaded
 * in one transaction with `COPY … FREEZE`, the lanes taking tables in turn; returns how many tables. Rows copied
 * frozen are written once: copied plainly, the first scan after the load (the primary key's build) set a hint
 * bit on every page, so the whole heap was written again, and once more as full-page images in the WAL with
 * checksums on (a restore of a 1.3 GB table: WAL 1.5 GB instead of 2.7 GB, its primary key and index built in 3.8
 * s instead of 7.0 s). A large table then loads on one core, not dealt out between the lanes (15.9 s against 13.6
 * s for that table), which leaves the other core to the objects a restore writes meanwhile. Nothing of a table is committed until all its rows are.
 */
export async function copyRangeFiles(
  manifest: TableDataManifest,
  open: OpenDumpFile,
  lanes: Lane[],
): Promise<number> {
  const tables = [...manifest.tables];
  let failure: { error: unknown } | undefined;
  await Promise.all(
    lanes.map(async (lane) => {
      try {
        for (let table = tables.shift(); table && !failure; table = tables.shift()) {
          await loadFrozen(lane, table, open, () => failure !== undefined);
        }
      } catch (error) {
        // The first failure is the one to report: the other lanes are stopped, and theirs follow from it.
        failure ??= { error };
        for (const other of lanes) if (other !== lane) other.abort(error as Error);
      }
    }),
  );
  if (failure) throw failure.error;
  return manifest.tables.length;
}

async function loadFrozen(
  lane: Lane,
  table: RangeTable,
  open: OpenDumpFile,
  stopped: () => boolean,
): Promise<void> {
  // COPY FREEZE needs a table created or emptied in its own transaction: pg_restore made this one before.
  await lane.run('begin');
  await lane.run(`truncate only ${qualifiedName(table)}`);
  const statement = copyFrozenStatement(table);
  for (const file of table.files) {
    // Another lane failed: copyRangeFiles throws its error, and closing this connection rolls this table back.
    if (stopped()) return;
    await copyWhole(open(file), statement, lane);
  }
  await lane.run('commit');
}

/** copyRangeFiles on `jobs` connections of its own to the loader's database. */
export async function loadRangeFiles(
  manifest: TableDataManifest,
  dir: string,
  loader: Pick<Loader, 'url' | 'role'>,
  jobs: number,
): Promise<void> {
  const sql = openDatabase(loader.url, { max: jobs, writable: true, localCommit: true, noDelay: true });
  try {
    const lanes = await Promise.all(
      Array.from({ length: jobs }, () => openLane(sql, loader.role, manifest.encoding)),
    );
    await copyRangeFiles(manifest, filesIn(dir), lanes);
    await Promise.all(lanes.map((lane) => lane.release()));
  } catch (error) {
    await sql.end({ timeout: 0 });
    throw error;
  }
  await sql.end({ timeout: 5 });
}

/** The files of a dump folder, read in pieces of PIECE_SIZE. */
export function filesIn(dir: string): OpenDumpFile {
  return async function* piecesOf(name: string): AsyncGenerator<Buffer> {
    yield* createReadStream(path.join(dir, name), { highWaterMark: PIECE_SIZE }) as AsyncIterable<Buffer>;
  };
}
