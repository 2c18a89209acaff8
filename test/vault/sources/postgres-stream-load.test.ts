import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ArchiveEntry } from '../../../src/vault/sources/pgdump-archive.ts';
import { dumpPostgres } from '../../../src/vault/sources/postgres.ts';
import { serveFiles } from '../../../src/vault/sources/postgres-dump-feed.ts';
import { tableFacts } from '../../../src/vault/sources/postgres-facts.ts';
import { DUMP_ARCHIVE } from '../../../src/vault/sources/postgres-restore.ts';
import {
  copyStatementOf,
  loadOnWorker,
  loadStreamed,
} from '../../../src/vault/sources/postgres-stream-load.ts';
import { type TestDatabase, testDatabases } from '../../support/database.ts';
import { tempDir } from '../../support/temp.ts';

const work = tempDir('pg-stream-load');
const databases = testDatabases();
let source: TestDatabase;
let archive: Buffer;

function emptyDatabase(): Promise<TestDatabase> {
  return databases.create({ migrate: false });
}

/** The archive's bytes in pieces of the given sizes, in turn: fields and rows cut at every kind of place. */
async function* inPieces(bytes: Buffer, sizes: number[], failAt?: number): AsyncGenerator<Buffer> {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    if (failAt !== undefined && at >= failAt) throw new Error('blob 1234 is damaged');
    const size = sizes[i % sizes.length]!;
    yield bytes.subarray(at, at + size);
    at += size;
  }
}

beforeAll(async () => {
  source = await databases.create({ migrate: false });
  const [db] = await source.sql<{ name: string }[]>`select current_database() as name`;
  await source.sql.unsafe(`
    create sequence counter_seq start 100;
    create table wide (id bigint primary key, label text not null, odd text, blob bytea, doc jsonb, at timestamptz);
    insert into wide select i, 'label-' || i,
      case i % 5 when 0 then null when 1 then E'tab\\there\\nnew line' when 2 then E'back\\\\slash \\\\. dot'
        when 3 then 'ünïcødé ✓' else repeat('x', i % 300) end,
      decode(md5(i::text), 'hex'), jsonb_build_object('i', i), timestamptz '2024-01-01 00:00:00+00' + i * interval '1 s'
      from generate_series(1, 30000) i;
    create index wide_label on wide (label);
    create table "Quoted ""name""" ("Col A" int primary key, b text);
    insert into "Quoted ""name""" values (1, 'one'), (2, null);
    create table empty_one (id int primary key);
    create function public.only_at_home(v int) returns boolean language plpgsql as $f$
      begin
        if current_database() <> '${db!.name}' then raise exception 'row % refused outside its database', v; end if;
        return true;
      end $f$;`);
  await source.sql`select nextval('counter_seq') from generate_series(1, 7)`;
  await dumpPostgres(source.url, work.dir);
  archive = readFileSync(path.join(work.dir, DUMP_ARCHIVE));
});

afterAll(async () => {
  await databases.dropAll();
  work.remove();
});

describe('loading a dump straight from its bytes (postgres-stream-load.ts)', () => {
  it('I7: loads every table on two connections from bytes cut anywhere; digests, sequences and indexes match', async () => {
    const target = await emptyDatabase();
    const scratch = path.join(work.dir, 'scratch-1');
    mkdirSync(scratch);
    const result = await loadStreamed(
      inPieces(archive, [1, 3, 7, 4096, 65_537, 5]),
      { url: target.url, role: undefined },
      scratch,
      { jobs: 2 },
    );
    expect(result).toEqual({ loaded: true, tables: 3 });
    expect(await tableFacts(target.url)).toEqual(await tableFacts(source.url));
    const [seq] = await target.sql<{ last: number }[]>`select last_value as last from counter_seq`;
    expect(seq!.last).toBe(106);
    const indexes = await target.sql<{ name: string }[]>`
      select indexname as name from pg_indexes where tablename = 'wide' order by 1`;
    expect(indexes.map((i) => i.name)).toEqual(['wide_label', 'wide_pkey']);
  });

  it('a read that fails in the middle of a table commits none of its rows and names the failure', async () => {
    const target = await emptyDatabase();
    const scratch = path.join(work.dir, 'scratch-2');
    mkdirSync(scratch);
    const load = loadStreamed(
      inPieces(archive, [256 * 1024], Math.floor(archive.length * 0.6)),
      { url: target.url, role: undefined },
      scratch,
      { jobs: 2 },
    );
    await expect(load).rejects.toThrow('blob 1234 is damaged');
    const [rows] = await target.sql<{ n: number }[]>`select count(*)::int as n from wide`;
    expect(rows!.n).toBe(0);
  });

  it('rows the server refuses after the last was sent: the server’s sentence, not a hang', async () => {
    await source.sql.unsafe(
      'alter table "Quoted ""name""" add constraint at_home check (public.only_at_home("Col A"))',
    );
    try {
      const dir = path.join(work.dir, 'refused');
      await dumpPostgres(source.url, dir);
      const target = await emptyDatabase();
      const load = loadStreamed(
        inPieces(readFileSync(path.join(dir, DUMP_ARCHIVE)), [1 << 20]),
        { url: target.url, role: undefined },
        dir,
        { jobs: 2 },
      );
      await expect(load).rejects.toThrow(/row 1 refused outside its database/);
    } finally {
      await source.sql.unsafe('alter table "Quoted ""name""" drop constraint at_home');
    }
  }, 60_000);

  it('an archive it does not read (a newer format, large objects) is left whole, with nothing written', async () => {
    const target = await emptyDatabase();
    const newer = Buffer.from(archive);
    newer[6] = 15;
    const result = await loadStreamed(
      inPieces(newer, [1 << 20]),
      { url: target.url, role: undefined },
      work.dir,
      {
        jobs: 2,
      },
    );
    expect(result).toEqual({ loaded: false, reason: 'archive format 1.15' });
    const [tables] = await target.sql<{ n: number }[]>`
      select count(*)::int as n from pg_tables where schemaname = 'public'`;
    expect(tables!.n).toBe(0);

    const withObject = await emptyDatabase();
    await withObject.sql`select lo_from_bytea(0, 'large object')`;
    const dir = path.join(work.dir, 'large-object');
    await dumpPostgres(withObject.url, dir);
    const left = await loadStreamed(
      inPieces(readFileSync(path.join(dir, DUMP_ARCHIVE)), [1 << 20]),
      { url: target.url, role: undefined },
      dir,
      { jobs: 2 },
    );
    expect(left).toEqual({ loaded: false, reason: expect.stringMatching(/^it holds BLOB/) });
  });

  it('a truncated archive is named as such', async () => {
    const target = await emptyDatabase();
    const load = loadStreamed(
      inPieces(archive.subarray(0, 200), [64]),
      { url: target.url, role: undefined },
      work.dir,
      { jobs: 2 },
    );
    await expect(load).rejects.toThrow('The dump ends in the middle of the table of contents.');
  });
});

describe('on a worker thread (what a restore uses)', () => {
  it('loads a dump file the same way, and a failure comes back as its sentence', async () => {
    const target = await emptyDatabase();
    const file = path.join(work.dir, 'worker', DUMP_ARCHIVE);
    mkdirSync(path.dirname(file));
    writeFileSync(file, archive);
    const dir = path.dirname(file);
    const result = await loadOnWorker({ dir }, DUMP_ARCHIVE, { url: target.url, role: undefined }, dir, {
      jobs: 2,
    });
    expect(result).toEqual({ loaded: true, tables: 3 });
    expect(await tableFacts(target.url)).toEqual(await tableFacts(source.url));

    const cut = path.join(work.dir, 'worker', 'cut.pgdump');
    writeFileSync(cut, archive.subarray(0, 200));
    const other = await emptyDatabase();
    await expect(
      loadOnWorker({ dir }, 'cut.pgdump', { url: other.url, role: undefined }, dir, { jobs: 2 }),
    ).rejects.toThrow('The dump ends in the middle of the table of contents.');
  });

  it('loads a dump the main thread serves as it reads it (postgres-dump-feed.ts), with no file of it', async () => {
    const target = await emptyDatabase();
    const scratch = path.join(work.dir, 'feed-scratch');
    mkdirSync(scratch);
    const opened: string[] = [];
    const feed = serveFiles((name) => {
      opened.push(name);
      // Chunks of the sizes a repository gives, one of them larger than the loader's pieces.
      return name === DUMP_ARCHIVE ? inPieces(Buffer.from(archive), [700_000, 3, 65_537]) : undefined;
    });
    const result = await loadOnWorker({ feed }, DUMP_ARCHIVE, { url: target.url, role: undefined }, scratch, {
      jobs: 2,
    });
    expect(result).toEqual({ loaded: true, tables: 3 });
    expect(opened).toEqual([DUMP_ARCHIVE]);
    expect(await tableFacts(target.url)).toEqual(await tableFacts(source.url));
  });

  it('a feed that fails mid-dump stops the load with the feed’s own error, and commits none of that table', async () => {
    class DamagedBlob extends Error {
      override name = 'DamagedBlob';
    }
    const target = await emptyDatabase();
    const scratch = path.join(work.dir, 'feed-fail-scratch');
    mkdirSync(scratch);
    async function* failing(): AsyncGenerator<Buffer> {
      yield* inPieces(archive.subarray(0, archive.length >> 1), [100_000]);
      throw new DamagedBlob('blob 99 of postgres/database.pgdump is damaged');
    }
    const feed = serveFiles(() => failing());
    const load = loadOnWorker({ feed }, DUMP_ARCHIVE, { url: target.url, role: undefined }, scratch, {
      jobs: 2,
    });
    await expect(load).rejects.toBeInstanceOf(DamagedBlob);
    const [wide] = await target.sql<{ n: number }[]>`select count(*)::int as n from public.wide`;
    expect(wide!.n).toBe(0);
  });

  it('a name the feed does not serve is refused in a sentence', async () => {
    const target = await emptyDatabase();
    const feed = serveFiles(() => undefined);
    await expect(
      loadOnWorker({ feed }, DUMP_ARCHIVE, { url: target.url, role: undefined }, work.dir, { jobs: 2 }),
    ).rejects.toThrow(`The backup's dump holds no file "${DUMP_ARCHIVE}".`);
  });
});

describe('the COPY statements it runs', () => {
  const entry = (copyStmt: string) => ({ copyStmt }) as ArchiveEntry;

  it('are pg_dump’s own, rebuilt from checked names', () => {
    expect(copyStatementOf(entry('COPY public.wide (id, label, odd) FROM stdin;\n'))).toBe(
      'COPY public.wide (id, label, odd) FROM STDIN',
    );
    expect(copyStatementOf(entry('COPY public."Quoted ""name""" ("Col A", b) FROM stdin;\n'))).toBe(
      'COPY public."Quoted ""name""" ("Col A", b) FROM STDIN',
    );
    expect(copyStatementOf(entry('COPY public.empty_one FROM stdin;\n'))).toBe(
      'COPY public.empty_one FROM STDIN',
    );
  });

  it('refuse anything else a crafted archive could carry', () => {
    for (const crafted of [
      'COPY public.t FROM stdin; DROP TABLE x;\n',
      "COPY public.t FROM PROGRAM 'touch /tmp/x';\n",
      'COPY t FROM stdin;\n',
      'COPY public.t (a) TO stdout;\n',
      '',
      'INSERT INTO public.t VALUES (1);\n',
    ]) {
      expect(copyStatementOf(entry(crafted)), crafted).toBeUndefined();
    }
  });
});
