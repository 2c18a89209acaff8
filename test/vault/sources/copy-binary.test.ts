import { execFileSync } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPostgresBinary } from '../../../src/embedded/binaries.ts';
import {
  BINARY_TYPES,
  type BinaryType,
  binaryToText,
  CopyBinaryError,
} from '../../../src/vault/sources/copy-binary.ts';
import { type TestDatabase, testDatabases } from '../../support/database.ts';

const databases = testDatabases();
let db: TestDatabase;

/** Every type binaryToText writes, with the values where text and binary part ways. */
const COLUMNS = `id int4, b bool, s int2, i int4, l int8, r float4, d float8, n numeric, t text, v varchar(40),
  c char(5), u uuid, j json, jb jsonb, raw bytea, day date, at timestamp, atz timestamptz`;
const ROWS = `
  (1, true, -32768, -2147483648, -9223372036854775808, 0.1, '-0', 0, E'tab\\there\\nnew\\\\line\\rcr', 'é ünïcode',
   'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, "x\\ty"]}', '{"b": {"c": null}, "a": 1.50}',
   '\\x00ff5c0a09', '2000-01-01', '2000-01-01 00:00:00', '1999-12-31 23:59:59.999999+00'),
  (2, false, 32767, 2147483647, 9223372036854775807, 'NaN', 'Infinity', 'NaN', '', '', '', null, 'null', '[]',
   '\\x', 'infinity', 'infinity', '-infinity'),
  (3, null, null, null, null, '-Infinity', '-Infinity', 'Infinity', null, null, null, null, null, null,
   null, '-infinity', '-infinity', 'infinity'),
  (4, true, 0, 0, 0, 3.4028235e38, 1.7976931348623157e308, '-Infinity', 'x', 'y', 'z', null, '1', '"s"',
   null, '4714-11-24 BC', '4714-11-24 00:00:00 BC', '0001-01-01 00:00:00+00 BC'),
  (5, true, 1, 1, 1, 1.17549435e-38, 4.9e-324, -123456789.000123456789, 'x', 'y', 'z', null, '1', 'true',
   null, '5874897-12-31', '294276-12-31 23:59:59.999999', '294276-12-31 23:59:59.999999+00'),
  (6, true, 1, 1, 1, '-0', 0.1, 0.00000001, 'x', 'y', 'z', null, '1', '0.000', null, '1600-02-29',
   '2024-02-29 12:34:56.5', '2026-12-07 20:15:00.000001+00'),
  (7, true, 1, 1, 1, 1, 1e-7, 10000.0000, 'x', 'y', 'z', null, '1', '1e3', null, '0001-01-01 BC',
   '1970-01-01 00:00:00.000010', '1969-12-31 23:59:59.123456+00'),
  (8, true, 1, 1, 1, 1, 123456789012345680000, -0.5, 'x', 'y', 'z', null, '1', '{}', null, '9999-12-31',
   '10000-01-01 00:00:00', '2100-03-01 00:00:00+00')`;

function binaryRows(table: string): Buffer {
  return execFileSync(
    findPostgresBinary('psql'),
    [
      '-X',
      '-q',
      '-d',
      db.url,
      '-c',
      `copy (select * from ${table} order by id) to stdout with (format binary)`,
    ],
    { maxBuffer: 64 << 20 },
  );
}

async function* piecesOf(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

const rowsText = async (table: string) =>
  (await db.sql.unsafe<{ row: string }[]>(`select ${table}::text as row from ${table} order by id`)).map(
    (r) => r.row,
  );

/** The source table's column types, in order (id first, then one column of each type binaryToText writes). */
const COLUMN_TYPES: BinaryType[] = ['int4', ...BINARY_TYPES];

beforeAll(async () => {
  db = await databases.create({ migrate: false });
  await db.sql.unsafe(`create table source (${COLUMNS}); insert into source values ${ROWS};
    create table target (${COLUMNS}); create table big (id int4, n numeric, at timestamptz, t text);
    insert into big select i, i * 1.5, now() - i * interval '1 minute', repeat('r', i % 300) || E'\\n'
    from generate_series(1, 20000) i; create table big_copy (like big);`);
});

afterAll(async () => {
  await databases.dropAll();
});

describe('COPY binary rows written as COPY text (binaryToText)', () => {
  it('is tried on a table with a column of every type it names', async () => {
    const [row] = await db.sql<{ types: string[] }[]>`
      select array_agg(t.typname::text order by a.attnum) as types from pg_attribute a
      join pg_type t on t.oid = a.atttypid where a.attrelid = 'source'::regclass and a.attnum > 0`;
    expect(row!.types).toEqual(COLUMN_TYPES);
  });

  it('writes text the server loads to the same values, for every edge of every type', async () => {
    const text = binaryToText(piecesOf(binaryRows('source'), 7), COLUMN_TYPES);
    // A session in another time zone loads it: timestamptz is written in UTC with its offset.
    const session = await db.sql.reserve();
    try {
      await session.unsafe(`set timezone = 'America/St_Johns'`);
      await pipeline(text, await session.unsafe('copy target from stdin').writable());
    } finally {
      session.release();
    }
    expect(await rowsText('target')).toEqual(await rowsText('source'));
    // -0 keeps its sign, which the rows' text does not show.
    const [signs] = await db.sql<{ r: string; d: string }[]>`
      select (select r::text from target where id = 6) as r, (select d::text from target where id = 1) as d`;
    expect(signs).toEqual({ r: '-0', d: '-0' });
  });

  it('streams many rows cut at any byte into the same table', async () => {
    const bytes = binaryRows('big');
    const writable = await db.sql.unsafe('copy big_copy from stdin').writable();
    await pipeline(
      binaryToText(piecesOf(bytes, 65_537), ['int4', 'numeric', 'timestamptz', 'text']),
      writable,
    );
    expect(await rowsText('big_copy')).toEqual(await rowsText('big'));
  });

  it('refuses a file cut short, one with bytes after its end, and one that is not COPY binary', async () => {
    const bytes = binaryRows('big');
    const drain = async (pieces: AsyncIterable<Buffer>) => {
      for await (const _ of binaryToText(pieces, ['int4', 'numeric', 'timestamptz', 'text']));
    };
    await expect(drain(piecesOf(bytes.subarray(0, bytes.length - 1000), 4096))).rejects.toThrow(/cut short/);
    await expect(drain(piecesOf(Buffer.concat([bytes, Buffer.from('x')]), 4096))).rejects.toThrow(
      /bytes after the end/,
    );
    await expect(drain(piecesOf(Buffer.from('1\t2\n'.repeat(10)), 4096))).rejects.toThrow(CopyBinaryError);
    await expect(drain(piecesOf(bytes, 4096))).resolves.toBeUndefined();
  });
});
