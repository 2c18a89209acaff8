import { chmodSync, cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase, type Sql } from '../../../src/db/connection.ts';
import { dumpPostgres, streamDump } from '../../../src/vault/sources/postgres.ts';
import {
  createDatabaseIfMissing,
  dropAndRecreateDatabase,
  isDatabaseEmpty,
} from '../../../src/vault/sources/postgres-admin.ts';
import {
  assertClientNotOlder,
  clientMajor,
  libpqConnection,
} from '../../../src/vault/sources/postgres-client.ts';
import { tableFacts, verifyPostgres } from '../../../src/vault/sources/postgres-facts.ts';
import { DUMP_ARCHIVE, dumpToSql, restorePostgres } from '../../../src/vault/sources/postgres-restore.ts';
import type { PostgresDump } from '../../../src/vault/sources/types.ts';
import { type TestDatabase, testDatabases } from '../../support/database.ts';
import { dumpDataTables, loadSqlScript, startInserter } from '../../support/pg-dump.ts';
import { tempDir } from '../../support/temp.ts';

const work = tempDir('pg-source');
const dumpDir = path.join(work.dir, 'dump');
const databases = testDatabases();
let source: TestDatabase;
let restored: TestDatabase;
let dump: PostgresDump;
let pgDumpCmdline = '';
let insertedTotal = 0;
const timings: Record<string, number> = {};

const emptyDatabase = () => databases.create({ migrate: false });

async function populate(sql: Sql): Promise<void> {
  await sql.unsafe(`
    create sequence counter_seq start 100;
    create table big (id bigint primary key, label text not null, blob bytea, doc jsonb, maybe text,
      at timestamptz, price numeric(12, 2), ratio double precision);
    insert into big select i, 'label-' || i, decode(md5(i::text), 'hex') || '\\x00ff'::bytea,
      jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i % 7)),
      case when i % 3 = 0 then null else 'm' || i end,
      timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', i / 7.0, i / 3.0
      from generate_series(1, 50000) i;
    create index big_label on big (label);
    create type mood as enum ('sad', 'ok', 'happy');
    create domain positive as int check (value > 0);
    create table moods (id positive primary key, mood mood not null, spot point);
    insert into moods select i, (array['sad', 'ok', 'happy'])[1 + i % 3]::mood, point(i, i)
      from generate_series(1, 100) i;
    create table tagged (id positive primary key, tags text[], at timestamptz[]);
    insert into tagged select i, array['t' || i, 'u'], array[timestamptz '2024-01-01 00:00:00+00']
      from generate_series(1, 100) i;
    create table pair_a (n int primary key);
    create table pair_b (n int primary key);
    insert into objects (key, sha256, size, content_type, kind, deleted_at)
      select 'obj/' || i, md5(i::text) || md5(i::text), i, 'image/png', 'example',
        case when i % 4 = 0 then now() end
      from generate_series(1, 20) i;
  `);
  await sql`select nextval('counter_seq') from generate_series(1, 5)`;
}

beforeAll(async () => {
  source = await databases.create();
  await populate(source.sql);
  const inserter = startInserter(source.sql, async (tx, n) => {
    await tx`insert into pair_a values (${n})`;
    await tx`insert into pair_b values (${n})`;
  });
  await new Promise((resolve) => setTimeout(resolve, 100));
  let started = Date.now();
  dump = await dumpPostgres(source.url, dumpDir, {
    onSpawn: (pid) => {
      pgDumpCmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    },
  });
  timings.dump = Date.now() - started;
  await new Promise((resolve) => setTimeout(resolve, 50));
  insertedTotal = await inserter.stop();
  restored = await emptyDatabase();
  started = Date.now();
  await restorePostgres(dumpDir, restored.url, { url: restored.url, role: undefined }, { jobs: 2 });
  timings.restore = Date.now() - started;
});

afterAll(async () => {
  console.log(`postgres source: dump ${timings.dump} ms, restore ${timings.restore} ms (50k-row table)`);
  await databases.dropAll();
  work.remove();
});

describe('PostgreSQL source', () => {
  it('I7: a dump restored into an empty database verifies: same tables, rows and digests', async () => {
    expect(dump.facts.serverVersionNum).toBeGreaterThanOrEqual(100000);
    expect(dump.facts.tables['public.big']?.rows).toBe(50_000);
    expect(dump.facts.tables['public.objects']?.rows).toBe(20);
    const verdict = await verifyPostgres(restored.url, dump.facts);
    expect(verdict).toEqual({ ok: true, mismatches: [] });
    expect(await tableFacts(restored.url)).toEqual(dump.facts.tables);
    // Value-hashed types (domains and arrays looked through) take the cheaper digest; an enum, which hashes by an
    // oid the restore assigns anew, and a point, which has no hash, take the row text: all of them verify.
    expect(dump.facts.tables['public.big']?.method).toBe('record-hash');
    expect(dump.facts.tables['public.tagged']?.method).toBe('record-hash');
    expect(dump.facts.tables['public.moods']?.method).toBeUndefined();
    const pick = (sql: Sql) =>
      sql`select id, label, blob, doc, maybe, at, price, ratio from big where id in (3, 4, 49999) order by id`;
    expect(await pick(restored.sql)).toEqual(await pick(source.sql));
    const [seq] = await restored.sql`select last_value from counter_seq`;
    expect(Number(seq!.last_value)).toBe(104);
    const [index] = await restored.sql`select 1 from pg_indexes where indexname = 'big_label'`;
    expect(index).toBeDefined();
  });

  it('I7: facts recorded as row text (snapshots before record hashes) are verified as row text', async () => {
    const legacy = await tableFacts(
      restored.url,
      Object.fromEntries(
        Object.entries(dump.facts.tables).map(([table, f]) => [table, { rows: f.rows, hash: f.hash }]),
      ),
    );
    expect(Object.values(legacy).every((f) => f.method === undefined)).toBe(true);
    expect(legacy['public.big']!.hash).not.toBe(dump.facts.tables['public.big']!.hash);
    expect((await verifyPostgres(restored.url, { ...dump.facts, tables: legacy })).ok).toBe(true);
    const wrong = {
      ...legacy,
      'public.big': { ...legacy['public.big']!, hash: dump.facts.tables['public.big']!.hash },
    };
    expect((await verifyPostgres(restored.url, { ...dump.facts, tables: wrong })).ok).toBe(false);
  });

  it('I8: rows committed during the dump are wholly in or wholly out (one exported snapshot)', async () => {
    const facts = dump.facts.tables;
    const a = await restored.sql`select n from pair_a order by n`;
    const b = await restored.sql`select n from pair_b order by n`;
    expect(a.map((r) => r.n)).toEqual(b.map((r) => r.n));
    expect(a.length).toBe(facts['public.pair_a']!.rows);
    // The inserter ran before, during and after the dump: the snapshot cut it somewhere in the middle.
    expect(a.length).toBeGreaterThan(0);
    expect(a.length).toBeLessThan(insertedTotal);
  });

  it('I8: the live object keys come from the same snapshot, deleted objects left out', () => {
    const expected = Array.from({ length: 20 }, (_, i) => i + 1)
      .filter((i) => i % 4 !== 0)
      .map((i) => `obj/${i}`);
    expect([...dump.liveObjectKeys].sort()).toEqual(expected.sort());
  });

  it('passes the password through the environment, never on the command line', () => {
    const password = decodeURIComponent(new URL(source.url).password);
    expect(password.length).toBeGreaterThan(0);
    expect(pgDumpCmdline).toContain('--snapshot=');
    expect(pgDumpCmdline).not.toContain(password);
    const conn = libpqConnection(`${source.url}?ssl=true&max=3`);
    expect(conn.dbname).not.toContain(password);
    expect(conn.dbname).toMatch(/^postgresql:\/\/trends@127\.0\.0\.1:\d+\/t_[0-9a-f]+\?sslmode=require$/);
    expect(conn.env.PGPASSWORD).toBe(password);
  });

  it('I7: a damaged table file is named by verify, or by the restore when it cannot load', async () => {
    expect(dumpDataTables(path.join(dumpDir, DUMP_ARCHIVE))).toContain('public.big');
    // `big` holds nearly all the rows, so the archive's middle is inside its data.
    const damagedCopy = (name: string, damage: (bytes: Buffer, at: number) => void) => {
      const dir = path.join(work.dir, name);
      cpSync(dumpDir, dir, { recursive: true });
      const file = path.join(dir, DUMP_ARCHIVE);
      const bytes = readFileSync(file);
      damage(bytes, bytes.indexOf('label-', bytes.length >> 1));
      writeFileSync(file, bytes);
      return dir;
    };
    // A changed character that still parses: the restore succeeds, verify names the table.
    const quiet = damagedCopy('damaged-quiet', (bytes, at) => {
      bytes[at] = 'L'.charCodeAt(0);
    });
    const target = await emptyDatabase();
    await restorePostgres(quiet, target.url, { url: target.url, role: undefined }, { jobs: 2 });
    const verdict = await verifyPostgres(target.url, dump.facts);
    expect(verdict.ok).toBe(false);
    expect(verdict.mismatches.map((m) => m.table)).toEqual(['public.big']);
    expect(verdict.mismatches[0]!.actual?.rows).toBe(50_000);
    // Bytes that are not UTF-8: the restore itself stops and names the table.
    const loud = damagedCopy('damaged-loud', (bytes, at) => bytes.fill(0xff, at, at + 4));
    const target2 = await emptyDatabase();
    const error = await restorePostgres(
      loud,
      target2.url,
      { url: target2.url, role: undefined },
      { jobs: 2 },
    ).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /^The rows of public\.big could not be loaded: invalid byte sequence/,
    );
    expect((error as Error).message).not.toContain(decodeURIComponent(new URL(source.url).password));
  });

  it('the dump streams to its consumer, and a failure on either side stops both with the cause', async () => {
    const parts: Buffer[] = [];
    const streamed = await streamDump(source.url, async (_name, archive) => {
      for await (const chunk of archive) parts.push(chunk as Buffer);
      return 'consumed';
    });
    expect(streamed.files).toEqual([{ name: DUMP_ARCHIVE, consumed: 'consumed' }]);
    expect(Buffer.concat(parts).subarray(0, 5).toString()).toBe('PGDMP');
    expect(streamed.facts.tables['public.big']?.rows).toBe(50_000);

    // The consumer fails (a full backup disk): pg_dump is stopped, not left blocked on its pipe.
    let dumpPid = 0;
    const full = new Error('The disk under the backup folder is full.');
    const consumerFailed = streamDump(
      source.url,
      async (_name, archive) => {
        for await (const _ of archive) throw full;
      },
      { onSpawn: (pid) => (dumpPid = pid) },
    );
    await expect(consumerFailed).rejects.toBe(full);
    expect(existsSync(`/proc/${dumpPid}`)).toBe(false);

    // pg_dump dies mid-dump: its stream ends early, and that truncated archive is never taken for a dump.
    const dumpKilled = streamDump(
      source.url,
      async (_name, archive) => {
        let bytes = 0;
        for await (const chunk of archive) bytes += (chunk as Buffer).length;
        return bytes;
      },
      { onSpawn: (pid) => process.kill(pid, 'SIGKILL') },
    );
    await expect(dumpKilled).rejects.toThrow(/^pg_dump was stopped by SIGKILL/);
  });

  it('I8: the live object keys are read before any table is scanned, so the objects need not wait for a large table', async () => {
    const db = await databases.create();
    await db.sql.unsafe(`
      create table wide (id bigint primary key, label text not null, doc jsonb);
      insert into wide select i, repeat('w', 40) || i, jsonb_build_object('i', i) from generate_series(1, 300000) i;
      insert into objects (key, sha256, size, content_type, kind)
        select 'obj/' || i, md5(i::text) || md5(i::text), i, 'image/png', 'example' from generate_series(1, 3) i;`);
    // Every digest query the dump's session runs, seen from another session while it runs (300,000 rows: a scan
    // of tens of milliseconds, polled every few).
    const watcher = openDatabase(db.url, { max: 1 });
    let scansSeen = 0;
    let watching = true;
    const watching_ = (async () => {
      while (watching) {
        const [row] = await watcher<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity
          where state = 'active' and query like '%hash_record_extended%' and pid <> pg_backend_pid()`;
        scansSeen += row!.n;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    let scansBeforeKeys: number | undefined;
    let keys: string[] = [];
    try {
      const dumped = await streamDump(
        db.url,
        async (_name, archive) => {
          for await (const _ of archive);
          return 0;
        },
        {
          onLiveObjectKeys: (read) => {
            keys = read;
            scansBeforeKeys = scansSeen;
          },
        },
      );
      expect(dumped.facts.tables['public.wide']?.rows).toBe(300_000);
    } finally {
      watching = false;
      await watching_;
      await watcher.end();
    }
    expect(keys.sort()).toEqual(['obj/1', 'obj/2', 'obj/3']);
    expect(scansSeen).toBeGreaterThan(0);
    expect(scansBeforeKeys).toBe(0);
  });

  it('refuses to restore into a database that has tables', async () => {
    await expect(restorePostgres(dumpDir, source.url, { url: source.url, role: undefined })).rejects.toThrow(
      /is not empty/,
    );
  });

  it('I7: dumpToSql gives a script that psql loads into an empty database, and it verifies', async () => {
    const file = path.join(work.dir, 'db.sql');
    await dumpToSql(dumpDir, file);
    const text = readFileSync(file, 'utf8');
    expect(text).not.toMatch(/OWNER TO|GRANT /);
    const target = await emptyDatabase();
    loadSqlScript(file, target.url);
    expect((await verifyPostgres(target.url, dump.facts)).ok).toBe(true);
  });

  it('names missing and extra tables as mismatches', async () => {
    const target = await emptyDatabase();
    await target.sql`create table stray (x int)`;
    const verdict = await verifyPostgres(target.url, dump.facts);
    const stray = verdict.mismatches.find((m) => m.table === 'public.stray');
    expect(stray).toEqual({
      table: 'public.stray',
      expected: undefined,
      actual: { rows: 0, hash: '0'.repeat(16), method: 'record-hash' },
    });
    const big = verdict.mismatches.find((m) => m.table === 'public.big');
    expect(big?.actual).toBeUndefined();
  });

  it('says which client tools to install when pg_dump is older than the server', () => {
    const fake = path.join(work.dir, 'old-pg_dump');
    writeFileSync(fake, '#!/bin/sh\necho "pg_dump (PostgreSQL) 13.4"\n');
    chmodSync(fake, 0o755);
    expect(clientMajor(fake)).toBe(13);
    expect(() => assertClientNotOlder('pg_dump', 13, 150004)).toThrow(
      'pg_dump 13 is older than the server (15): install PostgreSQL 15 client tools.',
    );
    expect(() => assertClientNotOlder('pg_dump', 16, 150004)).not.toThrow();
  });

  it('creates, checks and recreates databases for in-place restores', async () => {
    const adminUrl = inject('postgresAdminUrl');
    const name = `t_src_${Date.now().toString(36)}`;
    expect(await createDatabaseIfMissing(adminUrl, name)).toBe(true);
    expect(await createDatabaseIfMissing(adminUrl, name)).toBe(false);
    const url = adminUrl.replace(/\/[^/?]+(\?|$)/, `/${name}$1`);
    const session = openDatabase(url, { max: 1 });
    try {
      await session`create table t (x int)`;
      expect(await isDatabaseEmpty(url)).toBe(false);
      await dropAndRecreateDatabase(adminUrl, name);
      expect(await isDatabaseEmpty(url)).toBe(true);
      await session`create table u (x int)`;
      await dropAndRecreateDatabase(url);
      expect(await isDatabaseEmpty(url)).toBe(true);
    } finally {
      await session.end({ timeout: 1 });
      const admin = openDatabase(adminUrl, { max: 1 });
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  });
});
