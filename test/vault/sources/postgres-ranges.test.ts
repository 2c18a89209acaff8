import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../../../src/db/connection.ts';
import { dumpPostgres, streamDump } from '../../../src/vault/sources/postgres.ts';
import { verifyPostgres } from '../../../src/vault/sources/postgres-facts.ts';
import { openLoader, RESTORED_OWNER } from '../../../src/vault/sources/postgres-loader.ts';
import {
  parseRangeManifest,
  TABLE_DATA_MANIFEST,
  type TableDataManifest,
} from '../../../src/vault/sources/postgres-ranges.ts';
import { DUMP_ARCHIVE, dumpToSql, restorePostgres } from '../../../src/vault/sources/postgres-restore.ts';
import type { PostgresDump } from '../../../src/vault/sources/types.ts';
import { type TestDatabase, testDatabases } from '../../support/database.ts';
import { dumpDataTables, loadSqlScript, startInserter } from '../../support/pg-dump.ts';
import { tempDir } from '../../support/temp.ts';

/** Blocks per range here: the 20,000-row table spans a few hundred blocks, so it is cut into several ranges. */
const RANGE_BLOCKS = 48;

const work = tempDir('pg-ranges');
const databases = testDatabases();
let source: TestDatabase;
let dump: PostgresDump;
const dumpDir = path.join(work.dir, 'dump');

const emptyDatabase = () => databases.create({ migrate: false });

async function populate(sql: Sql): Promise<void> {
  await sql.unsafe(`
    create table wide (id bigint primary key, gone int, label text not null, doc jsonb,
      at timestamptz, ratio double precision, note text, twice bigint generated always as (id * 2) stored);
    alter table wide drop column gone;
    insert into wide (id, label, doc, at, ratio, note)
      select i, 'label-' || i || repeat('x', 120), jsonb_build_object('i', i),
        timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', i / 3.0,
        case when i % 5 = 0 then E'tab\\there\\nnewline' end
      from generate_series(1, 20000) i;
    create table child (id int primary key, wide_id bigint not null references wide (id));
    insert into child select i, i * 3 from generate_series(1, 500) i;
    create table pair_a (n int primary key);
    create table pair_b (n int primary key);
  `);
}

const manifestOf = (dir: string) =>
  JSON.parse(readFileSync(path.join(dir, TABLE_DATA_MANIFEST), 'utf8')) as TableDataManifest;

beforeAll(async () => {
  source = await databases.create({ migrate: false });
  await populate(source.sql);
  await source.sql.unsafe('vacuum analyze');
  const inserter = startInserter(source.sql, async (tx, n) => {
    await tx`insert into wide (id, label) values (${100_000 + n}, 'late')`;
    await tx`insert into pair_a values (${n})`;
  });
  await new Promise((resolve) => setTimeout(resolve, 100));
  dump = await dumpPostgres(source.url, dumpDir, { rangeBlocks: RANGE_BLOCKS });
  await inserter.stop();
});

afterAll(async () => {
  await databases.dropAll();
  work.remove();
});

describe('a large table dumped in block ranges beside pg_dump', () => {
  it('leaves the table out of the archive and names its range files in the manifest', () => {
    const manifest = manifestOf(dumpDir);
    expect(manifest.tables.map((t) => `${t.schema}.${t.name}`)).toEqual(['public.wide']);
    const [wide] = manifest.tables;
    // The dropped column is gone and the generated one is computed again on load, as pg_dump does.
    expect(wide!.columns).toEqual(['id', 'label', 'doc', 'at', 'ratio', 'note']);
    // Built-in types only: the rows travel in COPY's binary format, which the server loads without parsing text.
    expect(wide!.format).toBe('binary');
    expect(wide!.types).toEqual(['int8', 'text', 'jsonb', 'timestamptz', 'float8', 'text']);
    expect(readFileSync(path.join(dumpDir, wide!.files[0]!)).subarray(0, 6).toString()).toBe('PGCOPY');
    expect(wide!.files.length).toBeGreaterThanOrEqual(3);
    for (const file of wide!.files) expect(existsSync(path.join(dumpDir, file))).toBe(true);
    expect(dumpDataTables(path.join(dumpDir, DUMP_ARCHIVE))).not.toContain('public.wide');
    expect(dumpDataTables(path.join(dumpDir, DUMP_ARCHIVE))).toContain('public.child');
  });

  it('refuses a manifest whose format it cannot read, or whose types do not name one known type per column', () => {
    const manifest = manifestOf(dumpDir);
    const withTable = (changes: object) =>
      JSON.stringify({ ...manifest, tables: [{ ...manifest.tables[0], ...changes }] });
    expect(() => parseRangeManifest(withTable({}))).not.toThrow();
    for (const changes of [
      { format: 'csv' },
      { types: undefined },
      { types: ['int8', 'text'] },
      { types: ['int8', 'text', 'jsonb', 'timestamptz', 'float8', 'money'] },
    ]) {
      expect(() => parseRangeManifest(withTable(changes)), JSON.stringify(changes)).toThrow(
        /gives public\.wide a format this trendgen cannot read/,
      );
    }
  });

  it('I8: rows committed during the dump are wholly in or wholly out across the ranges and the archive', async () => {
    const target = await emptyDatabase();
    await restorePostgres(dumpDir, target.url, { url: target.url, role: undefined }, { jobs: 2 });
    const [row] = await target.sql<{ late: number; pairs: number }[]>`
      select (select count(*)::int from wide where label = 'late') as late,
        (select count(*)::int from pair_a) as pairs`;
    expect(row!.late).toBe(row!.pairs);
    expect(dump.facts.tables['public.wide']!.rows).toBe(20_000 + row!.late);
  });

  it('I7: restored through the COPY loader, the database verifies against the facts', async () => {
    const target = await emptyDatabase();
    await restorePostgres(dumpDir, target.url, { url: target.url, role: undefined }, { jobs: 2 });
    expect(await verifyPostgres(target.url, dump.facts)).toEqual({ ok: true, mismatches: [] });
    const [twice] = await target.sql<{ ok: boolean }[]>`select bool_and(twice = id * 2) as ok from wide`;
    expect(twice!.ok).toBe(true);
  });

  it('loads a range table frozen: every page of its heap is written once, never again to set hint bits', async () => {
    const target = await emptyDatabase();
    await restorePostgres(dumpDir, target.url, { url: target.url, role: undefined }, { jobs: 2 });
    await target.sql`create extension pg_visibility`;
    const [wide] = await target.sql<{ pages: number; frozen: number }[]>`
      select (pg_relation_size('wide') / current_setting('block_size')::int)::int as pages,
        (select all_frozen from pg_visibility_map_summary('wide'))::int as frozen`;
    expect(wide!.pages).toBeGreaterThan(3 * RANGE_BLOCKS);
    expect(wide!.frozen).toBe(wide!.pages);
  });

  it('into a superuser URL, trendgen_restored owns the range table it loaded frozen, and it verifies', async () => {
    const target = await emptyDatabase();
    const loader = await openLoader(target.url);
    try {
      expect(loader.role).toBe(RESTORED_OWNER);
      await loader.prepare();
      // The frozen load empties the table first, which only its owner may do: the loader's login is not it.
      await restorePostgres(dumpDir, target.url, loader, { jobs: 2 });
    } finally {
      await loader.release();
    }
    expect(await verifyPostgres(target.url, dump.facts)).toEqual({ ok: true, mismatches: [] });
    await target.sql`create extension pg_visibility`;
    const [wide] = await target.sql<{ owner: string; pages: number; frozen: number }[]>`
      select (select tableowner from pg_tables where tablename = 'wide') as owner,
        (pg_relation_size('wide') / current_setting('block_size')::int)::int as pages,
        (select all_frozen from pg_visibility_map_summary('wide'))::int as frozen`;
    expect(wide!.owner).toBe(RESTORED_OWNER);
    expect(wide!.frozen).toBe(wide!.pages);
    expect(wide!.pages).toBeGreaterThan(3 * RANGE_BLOCKS);
  });

  it('a range file refused in the middle of a table commits none of its rows and names the table', async () => {
    const damaged = path.join(work.dir, 'damaged');
    cpSync(dumpDir, damaged, { recursive: true });
    const [wide] = manifestOf(damaged).tables;
    appendFileSync(path.join(damaged, wide!.files[1]!), 'not a row of wide\n');
    const target = await emptyDatabase();
    const load = restorePostgres(damaged, target.url, { url: target.url, role: undefined }, { jobs: 2 });
    await expect(load).rejects.toThrow(/^The rows of "public"\."wide" could not be loaded: /);
    const [row] = await target.sql<{ n: number }[]>`select count(*)::int as n from wide`;
    expect(row!.n).toBe(0);
  });

  it('I7: an archive left to pg_restore (a large object) gets its ranges between data and constraints', async () => {
    const withObject = await emptyDatabase();
    await populate(withObject.sql);
    await withObject.sql`select lo_from_bytea(0, '\\x0102'::bytea)`;
    const dir = path.join(work.dir, 'with-object');
    const facts = (await dumpPostgres(withObject.url, dir, { rangeBlocks: RANGE_BLOCKS })).facts;
    expect(manifestOf(dir).tables).toHaveLength(1);
    const target = await emptyDatabase();
    // child's foreign key is checked when it is created: wide's rows must all be there by then.
    await restorePostgres(dir, target.url, { url: target.url, role: undefined }, { jobs: 2 });
    expect((await verifyPostgres(target.url, facts)).ok).toBe(true);
    const [lo] = await target.sql<{ n: number }[]>`select count(*)::int as n from pg_largeobject_metadata`;
    expect(lo!.n).toBe(1);
  });

  it('I7: a table with a type binary rows cannot carry (an array) is dumped as COPY text and loads', async () => {
    const db = await emptyDatabase();
    await db.sql.unsafe(`create table tagged (id int primary key, tags text[], mood text);
      insert into tagged select i, array['t' || i, E'a\\tb'], repeat('m', 200) from generate_series(1, 6000) i`);
    const dir = path.join(work.dir, 'tagged');
    const { facts } = await dumpPostgres(db.url, dir, { rangeBlocks: RANGE_BLOCKS });
    const [tagged] = manifestOf(dir).tables;
    expect(tagged!.format).toBeUndefined();
    expect(readFileSync(path.join(dir, tagged!.files[0]!), 'utf8')).toMatch(/^1\t\{t1,/);
    const target = await emptyDatabase();
    await restorePostgres(dir, target.url, { url: target.url, role: undefined }, { jobs: 2 });
    expect(await verifyPostgres(target.url, facts)).toEqual({ ok: true, mismatches: [] });
    const script = path.join(work.dir, 'tagged.sql');
    await dumpToSql(dir, script);
    const scripted = await emptyDatabase();
    loadSqlScript(script, scripted.url);
    expect(await verifyPostgres(scripted.url, facts)).toEqual({ ok: true, mismatches: [] });
  });

  it('I7: dumpToSql puts the ranges in the script, which psql loads and which verifies', async () => {
    const file = path.join(work.dir, 'db.sql');
    await dumpToSql(dumpDir, file);
    expect(readdirSync(work.dir).filter((name) => name.startsWith('db.sql'))).toEqual(['db.sql']);
    const target = await emptyDatabase();
    loadSqlScript(file, target.url);
    expect(await verifyPostgres(target.url, dump.facts)).toEqual({ ok: true, mismatches: [] });
  });

  it('rows appended since leave every range but the last byte for byte the same (they deduplicate)', async () => {
    const db = await emptyDatabase();
    await populate(db.sql);
    const first = path.join(work.dir, 'first');
    await dumpPostgres(db.url, first, { rangeBlocks: RANGE_BLOCKS });
    // Rows as large as the others: no page before the end has room for one, so they fill new blocks.
    await db.sql.unsafe(`insert into wide (id, label) select i, 'label-' || i || repeat('y', 200)
      from generate_series(20001, 26000) i`);
    const again = path.join(work.dir, 'again');
    await dumpPostgres(db.url, again, { rangeBlocks: RANGE_BLOCKS });
    const before = manifestOf(first).tables[0]!.files;
    const after = manifestOf(again).tables[0]!.files;
    expect(after.length).toBeGreaterThan(before.length);
    const same = before.map((file) =>
      readFileSync(path.join(again, file)).equals(readFileSync(path.join(first, file))),
    );
    expect(same.slice(0, -1).every(Boolean), JSON.stringify(same)).toBe(true);
  });

  it('a consumer failing on a range stops pg_dump and every psql, with its cause', async () => {
    const full = new Error('The disk under the backup folder is full.');
    const pids = () =>
      execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)], { encoding: 'utf8' })
        .split('\n')
        .filter((line) => /psql|pg_dump/.test(line));
    const failed = streamDump(
      source.url,
      async (name, data) => {
        for await (const _ of data) if (name.endsWith('.1.copy')) throw full;
      },
      { rangeBlocks: RANGE_BLOCKS },
    );
    await expect(failed).rejects.toBe(full);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(pids()).toEqual([]);
  });
});
