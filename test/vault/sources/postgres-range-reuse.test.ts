import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import type { Sql } from '../../../src/db/connection.ts';
import { Repository } from '../../../src/vault/repository/index.ts';
import { streamDump, writeDumpTree } from '../../../src/vault/sources/postgres.ts';
import { verifyPostgres } from '../../../src/vault/sources/postgres-facts.ts';
import { type DumpedBlobs, previousRanges } from '../../../src/vault/sources/postgres-range-reuse.ts';
import { restorePostgres } from '../../../src/vault/sources/postgres-restore.ts';
import { type TestDatabase, testDatabases } from '../../support/database.ts';
import { tempDir } from '../../support/temp.ts';

/** Blocks per range here: ledger's 20,000 rows span about 600 blocks, so 6 or 7 ranges. */
const RANGE_BLOCKS = 100;

const work = tempDir('pg-range-reuse');
const databases = testDatabases();
let repo: Repository;
let restores = 0;

async function populate(sql: Sql): Promise<void> {
  // Room left in every page (fillfactor), so an update can stay in its page: its range keeps its row count.
  await sql.unsafe(`
    create table ledger (id bigint primary key, amount numeric, note text not null) with (fillfactor = 90);
    insert into ledger select i, (i % 100) / 10.0, 'note-' || i || repeat('x', 180) from generate_series(1, 20000) i;
    create table small (id int primary key);
    insert into small select generate_series(1, 10);
  `);
  await sql`vacuum (analyze, freeze) ledger`;
}

/** One dump into the repository, taking unchanged ranges from the tree of `parent`. */
async function backup(db: TestDatabase, parent?: string) {
  const dump = await streamDump<DumpedBlobs>(db.url, (_name, data) => repo.storeFile(data), {
    rangeBlocks: RANGE_BLOCKS,
    previous: await previousRanges(repo, parent),
  });
  const tree = await writeDumpTree(repo, dump.files);
  await repo.flushBlobs();
  const ranges = dump.files.filter((file) => file.name.endsWith('.copy'));
  return { dump, tree, taken: ranges.map((file) => file.unchanged === true) };
}

/** The tree restored into an empty database, proven against the facts of its own dump (I7). */
async function restored(tree: string, facts: Awaited<ReturnType<typeof backup>>['dump']['facts']) {
  const dir = path.join(work.dir, `restore-${++restores}`);
  await repo.restoreTree(tree, dir, { durable: false });
  const target = await databases.create({ migrate: false });
  await restorePostgres(dir, target.url, { url: target.url, role: undefined }, { jobs: 2 });
  expect(await verifyPostgres(target.url, facts)).toEqual({ ok: true, mismatches: [] });
  return target;
}

/** The range of `ledger` a row is in now. */
async function rangeOf(db: TestDatabase, id: number, ranges: number): Promise<number> {
  const [row] = await db.sql<
    { block: string }[]
  >`select (ctid::text::point)[0]::bigint as block from ledger where id = ${id}`;
  return Math.min(Math.floor(Number(row!.block) / RANGE_BLOCKS), ranges - 1);
}

beforeAll(async () => {
  const key = randomBytes(32);
  repo = await Repository.init(new FileBlobStore(path.join(work.dir, 'repo')), { authKey: key });
});

afterAll(async () => {
  await databases.dropAll();
  work.remove();
});

describe('a second dump takes the ranges whose rows did not change (I2, I7)', () => {
  it('unchanged rows: every range is taken from the parent, and the restore verifies', async () => {
    const db = await databases.create({ migrate: false });
    await populate(db.sql);
    const first = await backup(db);
    expect(first.taken.length).toBeGreaterThanOrEqual(5);
    expect(first.taken.every((taken) => !taken)).toBe(true);
    const second = await backup(db, first.tree);
    expect(second.taken.every(Boolean)).toBe(true);
    expect(second.dump.facts.tables).toEqual(first.dump.facts.tables);
    await restored(second.tree, second.dump.facts);
  });

  it('an update, a delete and an insert: only the ranges holding them are dumped again', async () => {
    const db = await databases.create({ migrate: false });
    await populate(db.sql);
    const first = await backup(db);
    const ranges = first.taken.length;
    const updatedFrom = await rangeOf(db, 7000, ranges);
    await db.sql`update ledger set note = 'changed' where id = 7000`;
    const updatedTo = await rangeOf(db, 7000, ranges);
    const deleted = await rangeOf(db, 13000, ranges);
    await db.sql`delete from ledger where id = 13000`;
    await db.sql`insert into ledger values (30000, 1, 'appended')`;
    const inserted = await rangeOf(db, 30000, ranges);
    const second = await backup(db, first.tree);
    const dumped = new Set([updatedFrom, updatedTo, deleted, inserted]);
    expect(second.taken).toEqual(first.taken.map((_, k) => !dumped.has(k)));
    const target = await restored(second.tree, second.dump.facts);
    const rows = await target.sql<{ id: number; note: string }[]>`
      select id::int, note from ledger where id in (7000, 13000, 30000) order by id`;
    expect(rows).toEqual([
      { id: 7000, note: 'changed' },
      { id: 30000, note: 'appended' },
    ]);
  });

  it('a value changed to one that hashes the same (1.0 to 1.00) is still dumped again, as written', async () => {
    const db = await databases.create({ migrate: false });
    await populate(db.sql);
    const first = await backup(db);
    const before = await rangeOf(db, 10, first.taken.length);
    // The same number at another scale: hash_record_extended gives both the same hash, so only the row's new
    // version (its xmin and place) tells the range changed.
    await db.sql`update ledger set amount = 1.00 where id = 10`;
    expect(await rangeOf(db, 10, first.taken.length)).toBe(before);
    const second = await backup(db, first.tree);
    expect(second.dump.facts.tables['public.ledger']).toEqual(first.dump.facts.tables['public.ledger']);
    expect(second.taken[before]).toBe(false);
    const target = await restored(second.tree, second.dump.facts);
    const [row] = await target.sql<{ amount: string }[]>`select amount::text from ledger where id = 10`;
    expect(row!.amount).toBe('1.00');
  });

  it('a column added since: none of the table is taken (its rows are new text)', async () => {
    const db = await databases.create({ migrate: false });
    await populate(db.sql);
    const first = await backup(db);
    await db.sql`alter table ledger add column flag boolean default true`;
    const second = await backup(db, first.tree);
    expect(second.taken.some(Boolean)).toBe(false);
    const target = await restored(second.tree, second.dump.facts);
    const [row] = await target.sql<
      { flagged: number }[]
    >`select count(*)::int as flagged from ledger where flag`;
    expect(row!.flagged).toBe(20000);
  });

  it('a parent whose range file is gone from the repository: that range is dumped again', async () => {
    const db = await databases.create({ migrate: false });
    await populate(db.sql);
    const first = await backup(db);
    const previous = (await previousRanges(repo, first.tree))!;
    const lost = previous.manifest.tables[0]!.files[1]!;
    const files = new Map(previous.files);
    files.delete(lost);
    const second = await streamDump<DumpedBlobs>(db.url, (_name, data) => repo.storeFile(data), {
      rangeBlocks: RANGE_BLOCKS,
      previous: { manifest: previous.manifest, files },
    });
    const ranges = second.files.filter((file) => file.name.endsWith('.copy'));
    expect(ranges.filter((file) => !file.unchanged).map((file) => file.name)).toEqual([lost]);
    await repo.flushBlobs();
  });

  it('a parent written by another server version: every range is dumped again', async () => {
    const db = await databases.create({ migrate: false });
    await populate(db.sql);
    const first = await backup(db);
    const previous = (await previousRanges(repo, first.tree))!;
    const second = await streamDump<DumpedBlobs>(db.url, (_name, data) => repo.storeFile(data), {
      rangeBlocks: RANGE_BLOCKS,
      previous: { ...previous, manifest: { ...previous.manifest, serverVersionNum: 140000 } },
    });
    expect(second.files.some((file) => file.unchanged)).toBe(false);
    await repo.flushBlobs();
  });
});
