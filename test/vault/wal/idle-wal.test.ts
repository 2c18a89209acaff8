import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { openDatabase, type Sql } from '../../../src/db/connection.ts';
import { migrate } from '../../../src/db/migrate.ts';
import { findPostgresBinary } from '../../../src/embedded/binaries.ts';
import { sleep } from '../../../src/lib/process.ts';
import { readWalRecord } from '../../../src/vault/repository/index.ts';
import { openRepository, resolveTargets } from '../../../src/vault/targets.ts';
import { holdsOnlyOwnCommits } from '../../../src/vault/wal/idle-wal.ts';
import { formatLsn, parseLsn } from '../../../src/vault/wal/lsn.ts';
import { statusTableUnlogged, writeWalStatus } from '../../../src/vault/wal/status.ts';
import { bareMachine } from '../../support/bare-machine.ts';
import { runCli } from '../../support/cli.ts';
import { protectedMachine } from '../../support/protected-machine.ts';

const PAGE = 8192;
const progress = (target: string) => ({
  target,
  timeline: 1,
  shippedLsn: 1n,
  recoverableUntil: new Date(),
  lagSeconds: 0,
  error: undefined,
});

// I11: protect's status writes (an unlogged table) leave commit records in the WAL; recognising them as idle
// keeps an idle service from shipping twice a second, and must never hold back WAL that carries a change.
describe('idle WAL: recognising protect’s own commit records', { timeout: 120_000 }, () => {
  const machine = bareMachine('idle-wal');
  const pg = machine.postgres({ autovacuum: 'off' });
  let sql: Sql;

  beforeAll(async () => {
    const running = await pg.start();
    sql = openDatabase(pg.url(running.port, 'postgres'), { max: 1 });
    await migrate(sql);
    await sql`create table logged (id serial primary key, note text)`;
  });

  afterAll(async () => {
    await sql?.end({ timeout: 1 }).catch(() => {});
    await pg.stop().catch(() => {});
    machine.temp.remove();
  });

  /**
   * Where the WAL ends once all of it is on disk. A transaction that wrote only unlogged tables commits
   * asynchronously (its commit record waits for the WAL writer), so the end is awaited, not read once.
   */
  async function flushed(): Promise<bigint> {
    for (;;) {
      const [row] = await sql<{ insert: string; flush: string }[]>`
        select pg_current_wal_insert_lsn()::text as insert, pg_current_wal_flush_lsn()::text as flush`;
      if (parseLsn(row!.flush) >= parseLsn(row!.insert)) return parseLsn(row!.insert);
      await sleep(20);
    }
  }

  function walBytes(from: bigint, to: bigint): Buffer {
    const walDir = path.join(pg.dataDir, 'pg_wal');
    const segment = 16n * 1024n * 1024n;
    const parts: Buffer[] = [];
    for (let at = from; at < to; ) {
      const segno = at / segment;
      const name = readdirSync(walDir).find(
        (f) => f.length === 24 && BigInt(`0x${f.slice(8, 16)}`) * 256n + BigInt(`0x${f.slice(16)}`) === segno,
      )!;
      const file = readFileSync(path.join(walDir, name));
      const end = to < (segno + 1n) * segment ? to : (segno + 1n) * segment;
      parts.push(file.subarray(Number(at - segno * segment), Number(end - segno * segment)));
      at = end;
    }
    return Buffer.concat(parts);
  }

  async function statusWrites(count: number): Promise<Set<number>> {
    const xids = new Set<number>();
    for (let i = 0; i < count; i++) {
      xids.add((await writeWalStatus(sql, 'streaming', [progress('local'), progress('offsite')]))!);
    }
    return xids;
  }

  it('knows the status table is unlogged, and writes all targets in one transaction', async () => {
    expect(await statusTableUnlogged(sql)).toBe(true);
    // The first write after start-up may prune catalog pages it reads (WAL of its own, shipped as any).
    await statusWrites(1);
    const from = await flushed();
    await statusWrites(1);
    // One commit record (34 bytes, 8-aligned): two statements would have left two.
    expect(Number((await flushed()) - from)).toBe(40);
  });

  it('recognises status commits, within a page and across page boundaries', async () => {
    const from = await flushed();
    const xids = await statusWrites(3);
    const to = await flushed();
    expect(holdsOnlyOwnCommits(walBytes(from, to), from, xids, PAGE)).toBe(true);

    // Enough writes to cross at least one page header.
    const longFrom = await flushed();
    const many = await statusWrites(450);
    const longTo = await flushed();
    expect(longTo / BigInt(PAGE)).toBeGreaterThan(longFrom / BigInt(PAGE));
    expect(holdsOnlyOwnCommits(walBytes(longFrom, longTo), longFrom, many, PAGE)).toBe(true);
  });

  it('refuses anything else: other transactions, changes, torn or shifted ranges, a flipped bit', async () => {
    const from = await flushed();
    const xids = await statusWrites(2);
    await sql`insert into logged (note) values ('a change that must be shipped')`;
    const more = await statusWrites(2);
    const to = await flushed();
    const all = new Set([...xids, ...more]);
    const bytes = walBytes(from, to);
    expect(holdsOnlyOwnCommits(bytes, from, all, PAGE)).toBe(false);

    const quietFrom = await flushed();
    const quiet = await statusWrites(3);
    const quietTo = await flushed();
    const quietBytes = walBytes(quietFrom, quietTo);
    expect(holdsOnlyOwnCommits(quietBytes, quietFrom, quiet, PAGE)).toBe(true);
    // A commit of a transaction not noted as protect's own.
    expect(holdsOnlyOwnCommits(quietBytes, quietFrom, new Set([...quiet].slice(1)), PAGE)).toBe(false);
    // A range that ends or starts inside a record.
    expect(holdsOnlyOwnCommits(quietBytes.subarray(0, quietBytes.length - 8), quietFrom, quiet, PAGE)).toBe(
      false,
    );
    expect(holdsOnlyOwnCommits(quietBytes.subarray(8), quietFrom + 8n, quiet, PAGE)).toBe(false);
    // One bit of the second record changed.
    const flipped = Buffer.from(quietBytes);
    flipped[40 + 30]! ^= 1;
    expect(holdsOnlyOwnCommits(flipped, quietFrom, quiet, PAGE)).toBe(false);
    expect(holdsOnlyOwnCommits(Buffer.alloc(0), quietFrom, quiet, PAGE)).toBe(false);
  });

  it('recognises a standby snapshot, and not the checkpoint it comes with', async () => {
    const from = await flushed();
    await sql`checkpoint`;
    const to = await flushed();
    const dump = execFileSync(
      findPostgresBinary('pg_waldump'),
      ['-p', path.join(pg.dataDir, 'pg_wal'), '-s', formatLsn(from), '-e', formatLsn(to)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    )
      .split('\n')
      .filter(Boolean);
    const at = (line: string) => parseLsn(/lsn: ([0-9A-F/]+),/.exec(line)![1]!);
    const snapshot = dump.findIndex((line) => line.includes('RUNNING_XACTS'));
    expect(snapshot).toBeGreaterThanOrEqual(0);
    const start = at(dump[snapshot]!);
    const end = dump[snapshot + 1] ? at(dump[snapshot + 1]!) : to;
    expect(holdsOnlyOwnCommits(walBytes(start, end), start, new Set(), PAGE)).toBe(true);
    expect(holdsOnlyOwnCommits(walBytes(start, to), start, new Set(), PAGE)).toBe(false);
  });
});

// I11: an idle `trendgen protect` stores nothing new, yet says the moment is recoverable, restores it, and a
// change after a quiet stretch is shipped within the second as ever.
describe('I11 trendgen protect on an idle database', { timeout: 240_000 }, () => {
  const protected_ = protectedMachine('protect-idle', { autovacuum: 'off' });
  const { status } = protected_;
  const { env } = protected_.machine;

  const blobDir = () => path.join(env.BACKUP_DIR!, 'data');
  const blobCount = () =>
    readdirSync(blobDir(), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;

  it('ships nothing while idle, keeps the lag under a second, and ships the next change at once', async () => {
    const sql = protected_.sql();
    for (let i = 0; i < 120; i++) {
      const s = await status().catch(() => undefined);
      if (s?.window && s.sources.length > 0) break;
      await sleep(500);
    }
    await sql`create table ledger (id serial primary key, note text not null)`;
    await sql`insert into ledger (note) values ('before the quiet')`;
    await sleep(2000);
    const quietMoment = new Date(Date.now() + 3000);

    const before = blobCount();
    await sleep(6000);
    // Before, every cycle stored a piece and a tree: about 24 blobs in these 6 s.
    expect(blobCount() - before).toBeLessThanOrEqual(2);
    const quiet = await status();
    const postgres = quiet.sources.find((s) => s.source === 'postgres');
    expect(postgres?.lagSeconds).not.toBeNull();
    expect(postgres!.lagSeconds!).toBeLessThan(1.5);

    // Past the refresh (10 s after the last record), the record says the quiet stretch is covered: a moment
    // inside it, after the last WAL stored, restores.
    await sleep(6000);
    const drill = await runCli(['drill', '--moment', quietMoment.toISOString(), '--json'], env);
    expect(drill.code, `${drill.stderr}${drill.stdout}`).toBe(0);
    expect(JSON.parse(drill.stdout).status).toBe('passed');

    await sql`insert into ledger (note) values ('after the quiet')`;
    const [lsn] = await sql<{ l: string }[]>`select pg_current_wal_lsn()::text as l`;
    const config = loadConfig(env, { dotEnv: false });
    const repo = await openRepository(resolveTargets(config)[0]!, config);
    const shippedBy = Date.now() + 2000;
    let shipped = false;
    while (!shipped && Date.now() < shippedBy) {
      const record = await readWalRecord(repo, 'partial', walFile(lsn!.l));
      shipped = parseLsn(record.endLsn!) >= parseLsn(lsn!.l);
      if (!shipped) await sleep(100);
    }
    expect(shipped).toBe(true);
  });
});

function walFile(lsn: string): string {
  const value = parseLsn(lsn);
  const segno = value / (16n * 1024n * 1024n);
  const hex = (n: bigint) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(1n)}${hex(segno / 256n)}${hex(segno % 256n)}`;
}
