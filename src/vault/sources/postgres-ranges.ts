import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { TransactionSql } from '../../db/connection.ts';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import { type BinaryType, isBinaryType } from './copy-binary.ts';
import { run } from './postgres-client.ts';

/**
 * A large table's rows dumped as several COPY streams at once, each one range of the table's blocks read by a
 * TID range scan in the dump's own snapshot. One pg_dump sends a table through one server process (8.2 s for a
 * 1.3 GB table here, two ranges at once 5.1 s), so a table this large is left out of pg_dump's data and dumped
 * beside it. Ranges have a fixed size in blocks: rows appended to a table fill new blocks, so every range but the
 * last reads the same bytes as before and deduplicates whole.
 */

/** Blocks per range: 128 MiB of heap with 8 KiB blocks. */
export const RANGE_BLOCKS = 16_384;
/** Ranges dumped at once, beside pg_dump and the facts' scan. */
export const RANGE_JOBS = 2;
/** The manifest naming a dump's range files: absent from dumps with none (and from every earlier snapshot). */
export const TABLE_DATA_MANIFEST = 'table-data.json';

export interface RangeTable {
  schema: string;
  name: string;
  /** The columns COPY carries, in order (generated columns are computed again by the server, as pg_dump does). */
  columns: string[];
  /** The range files, in block order: together they hold every row of the table. */
  files: string[];
  /** 'binary': the files are COPY's binary format (copy-binary.ts); absent, COPY text (every range before 2026-12-07). */
  format?: 'binary';
  /** With the binary format: each column's type, which a reader needs to write the rows as text. */
  types?: BinaryType[];
  /** What each range file's rows were, in the order of `files` (postgres-range-reuse.ts); absent before 2026-12-07. */
  fingerprints?: RangeFingerprint[];
}

/** A range's rows as the dump's snapshot held them: enough for a later snapshot to know they did not change. */
export interface RangeFingerprint {
  /** The range's first block. */
  from: number;
  rows: number;
  /** The rows' digest by the table's facts method (postgres-facts.ts), 64-bit hex. */
  digest: string;
  /** The sum of hash(ctid, xmin) over the rows, 64-bit hex: an insert, update or delete in the range changes it. */
  versions: string;
}

export interface TableDataManifest {
  version: 1;
  /** The encoding the rows were written in (the server's), which COPY must be told when loading them. */
  encoding: string;
  /** The server that wrote the rows (`server_version_num`): another may write the same rows as other text. */
  serverVersionNum?: number;
  /** RANGE_TEXT_FORMAT of the trendgen that wrote them. */
  textFormat?: number;
  tables: RangeTable[];
}

/** The text streamRange writes: a change to its settings or statement must change this number. */
export const RANGE_TEXT_FORMAT = 1;

export interface PlannedRange {
  file: string;
  table: RangeTable;
  /** First block, and the block after the last (undefined: to the end of the table). */
  from: number;
  to: number | undefined;
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;
const quoteLiteral = (value: string) => `'${value.replaceAll("'", "''")}'`;

export const qualifiedName = (table: Pick<RangeTable, 'schema' | 'name'>) =>
  `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;

/** The statement that loads rows of the table as COPY text (what a SQL script carries). */
export const copyFromStatement = (table: RangeTable) =>
  `COPY ${qualifiedName(table)} (${table.columns.map(quoteIdent).join(', ')}) FROM STDIN`;

/** The statement that loads one of the table's range files as they are, frozen (see copyRangeFiles). */
export const copyFrozenStatement = (table: RangeTable) =>
  `${copyFromStatement(table)} WITH (${table.format === 'binary' ? 'FORMAT binary, ' : ''}FREEZE)`;

/** The binary format for a table whose every column is of a type copy-binary.ts can also write as text. */
function formatFor(types: Array<string | null>): Pick<RangeTable, 'format' | 'types'> {
  return types.every(isBinaryType) ? { format: 'binary', types } : {};
}

/**
 * The tables to dump in ranges: ordinary, persistent, not an extension's (the tables whose facts are taken),
 * at least two ranges long. Needs PostgreSQL 14 (TID range scans); none on older servers.
 */
export async function planRanges(
  tx: TransactionSql,
  rangeBlocks: number,
): Promise<{ manifest: TableDataManifest; ranges: PlannedRange[] } | undefined> {
  const [server] = await tx<{ num: number; encoding: string }[]>`
    select current_setting('server_version_num')::int as num, current_setting('server_encoding') as encoding`;
  if (!server || server.num < 140000) return undefined;
  const rows = await tx<
    { schema: string; name: string; blocks: string; columns: string[]; types: Array<string | null> }[]
  >`
    select n.nspname as schema, c.relname as name,
      pg_relation_size(c.oid) / current_setting('block_size')::int as blocks,
      array(select a.attname::text from pg_attribute a
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
        order by a.attnum) as columns,
      -- The built-in base type of each column; null for a domain, an array, an enum, an extension's type.
      array(select case when t.typnamespace = 'pg_catalog'::regnamespace and t.typtype = 'b'
            then t.typname::text end
        from pg_attribute a join pg_type t on t.oid = a.atttypid
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
        order by a.attnum) as types
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'r' and c.relpersistence = 'p'
      and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
      and not exists (select 1 from pg_depend d
        where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
      and pg_relation_size(c.oid) / current_setting('block_size')::int >= ${2 * rangeBlocks}
    order by 1, 2`;
  if (rows.length === 0) return undefined;
  const tables: RangeTable[] = [];
  const ranges: PlannedRange[] = [];
  for (const row of rows) {
    const table: RangeTable = {
      schema: row.schema,
      name: row.name,
      columns: row.columns,
      files: [],
      ...formatFor(row.types),
    };
    const count = Math.ceil(Number(row.blocks) / rangeBlocks);
    for (let k = 0; k < count; k++) {
      const file = `table-data.${tables.length}.${k}.copy`;
      table.files.push(file);
      // The last range is open: it also takes blocks added after the size was read (their rows are not in
      // the snapshot, but nothing is left out whatever the table's size by then).
      ranges.push({
        file,
        table,
        from: k * rangeBlocks,
        to: k + 1 < count ? (k + 1) * rangeBlocks : undefined,
      });
    }
    tables.push(table);
  }
  return {
    manifest: {
      version: 1,
      encoding: server.encoding,
      serverVersionNum: server.num,
      textFormat: RANGE_TEXT_FORMAT,
      tables,
    },
    ranges,
  };
}

/** pg_dump's pattern that names exactly this table (quoted: no wildcards). */
export const excludeDataArg = (table: RangeTable) => `--exclude-table-data=${qualifiedName(table)}`;

/**
 * Streams one range as COPY rows (binary or text, by the table's format) from psql, in the exported snapshot,
 * with the session settings pg_dump uses (ISO dates, exact floats, no search path, row security refused).
 */
export function streamRange(
  range: PlannedRange,
  snapshot: string,
  encoding: string,
  conn: { dbname: string; env: NodeJS.ProcessEnv; password: string },
) {
  const { table, from, to } = range;
  const where = `ctid >= '(${from},0)'::tid${to === undefined ? '' : ` and ctid < '(${to},0)'::tid`}`;
  const statements = [
    'begin isolation level repeatable read, read only',
    `set transaction snapshot ${quoteLiteral(snapshot)}`,
    `set local client_encoding = ${quoteLiteral(encoding)}; set local datestyle = 'ISO'; set local intervalstyle = 'postgres'; ` +
      `set local extra_float_digits = 3; set local search_path = ''; set local row_security = off; ` +
      `set local statement_timeout = 0; set local lock_timeout = 0; set local idle_in_transaction_session_timeout = 0`,
    `lock table only ${qualifiedName(table)} in access share mode nowait`,
    `copy (select ${table.columns.map(quoteIdent).join(', ')} from only ${qualifiedName(table)} where ${where}) to stdout${table.format === 'binary' ? ' with (format binary)' : ''}`,
    'commit',
  ];
  const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--no-password', '-d', conn.dbname];
  for (const statement of statements) args.push('-c', statement);
  return run(findPostgresBinary('psql'), args, conn.env, conn.password, { streamStdout: true });
}

/** The range manifest of a dump folder, or undefined for a dump without one. */
export async function readRangeManifest(dumpDir: string): Promise<TableDataManifest | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dumpDir, TABLE_DATA_MANIFEST), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return parseRangeManifest(text);
}

/** A range manifest's text, checked: only range files are named (they are opened by these names). */
export function parseRangeManifest(text: string): TableDataManifest {
  const manifest = JSON.parse(text) as TableDataManifest;
  if (manifest.version !== 1 || !Array.isArray(manifest.tables)) {
    throw new Error(`${TABLE_DATA_MANIFEST} in the dump is of a version this trendgen cannot read.`);
  }
  for (const table of manifest.tables) {
    const typed =
      table.format === 'binary' &&
      Array.isArray(table.types) &&
      table.types.length === table.columns.length &&
      table.types.every(isBinaryType);
    if (table.format !== undefined && !typed) {
      throw new Error(
        `${TABLE_DATA_MANIFEST} in the dump gives ${table.schema}.${table.name} a format this trendgen cannot read.`,
      );
    }
  }
  for (const file of manifest.tables.flatMap((table) => table.files)) {
    if (!/^table-data\.\d+\.\d+\.copy$/.test(file)) {
      throw new Error(`${TABLE_DATA_MANIFEST} names "${file}", which is not a range file: refused.`);
    }
  }
  return manifest;
}

/**
 * Dumps the ranges RANGE_JOBS at a time, each psql's output handed to `consume` as it streams. `signal` stops
 * them (a failure elsewhere in the dump); the first failure here stops the rest and is thrown.
 */
export async function dumpRanges<T>(
  ranges: PlannedRange[],
  snapshot: string,
  encoding: string,
  conn: { dbname: string; env: NodeJS.ProcessEnv; password: string },
  consume: (name: string, data: Readable) => Promise<T>,
  signal: AbortSignal,
): Promise<Array<{ name: string; consumed: T }>> {
  const results: Array<{ name: string; consumed: T }> = new Array(ranges.length);
  const running = new Set<{ kill: () => void }>();
  const stopAll = () => {
    for (const child of running) child.kill();
  };
  signal.addEventListener('abort', stopAll, { once: true });
  let next = 0;
  let failure: unknown;
  const lane = async () => {
    while (next < ranges.length && failure === undefined && !signal.aborted) {
      const index = next++;
      const range = ranges[index]!;
      const dump = streamRange(range, snapshot, encoding, conn);
      const handle = { kill: () => dump.child.kill('SIGTERM') };
      running.add(handle);
      dump.done.catch(() => {});
      try {
        const consuming = consume(range.file, dump.child.stdout!).catch((error: unknown) => {
          handle.kill();
          throw error;
        });
        const [dumped, consumed] = await Promise.allSettled([dump.done, consuming]);
        if (consumed.status === 'rejected') throw consumed.reason;
        if (dumped.status === 'rejected') throw dumped.reason;
        results[index] = { name: range.file, consumed: consumed.value };
      } catch (error) {
        failure ??= error;
        stopAll();
      } finally {
        running.delete(handle);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: RANGE_JOBS }, lane));
  } finally {
    signal.removeEventListener('abort', stopAll);
  }
  if (failure !== undefined) throw failure;
  if (signal.aborted) throw new Error('The table ranges were stopped before they were dumped.');
  return results;
}
