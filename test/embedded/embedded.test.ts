import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/connection.ts';
import { EmbeddedPostgres } from '../../src/embedded/postgres.ts';
import { EmbeddedRedis, redisProbe } from '../../src/embedded/redis.ts';
import { isAlive, waitForExit } from '../../src/lib/process.ts';
import { tempDir } from '../support/temp.ts';

describe('embedded PostgreSQL', () => {
  const temp = tempDir('pg');
  const pg = new EmbeddedPostgres({ root: temp.dir, user: 'trends', database: 'postgres', port: 0 });
  afterAll(async () => {
    await pg.stop();
    temp.remove();
  });

  it('starts with data checksums, fsync and wal_level=replica, behind a password', async () => {
    const running = await pg.start();
    const sql = openDatabase(running.url, { max: 1 });
    try {
      const [row] =
        await sql`select current_setting('data_checksums') as checksums, current_setting('fsync') as fsync,
        current_setting('wal_level') as wal, current_setting('listen_addresses') as listen`;
      expect(row).toEqual({ checksums: 'on', fsync: 'on', wal: 'replica', listen: '127.0.0.1' });
    } finally {
      await sql.end();
    }
    const wrong = openDatabase(running.url.replace(/:[^:@/]+@/, ':wrong@'), { max: 1 });
    await expect(wrong`select 1`).rejects.toThrow(/password authentication failed/);
    await wrong.end();
    expect(pg.findRunning()?.pid).toBe(running.pid);
  });

  it('restarts after SIGKILL, past a stale postmaster.pid, with committed rows intact', async () => {
    const before = pg.findRunning()!;
    const sql = openDatabase(before.url, { max: 1 });
    await sql`create table kept (n int)`;
    await sql`insert into kept values (42)`;
    await sql.end();
    process.kill(before.pid, 'SIGKILL');
    await waitForExit(before.pid, 10_000);
    // The pid file now names a dead process; make it name a live, unrelated one to be sure it is not trusted.
    const pidFile = path.join(pg.dataDir, 'postmaster.pid');
    const lines = readFileSync(pidFile, 'utf8').split('\n');
    lines[0] = String(process.pid);
    writeFileSync(pidFile, lines.join('\n'));
    expect(pg.findRunning()).toBeUndefined();
    const after = await pg.start();
    expect(isAlive(after.pid)).toBe(true);
    const again = openDatabase(after.url, { max: 1 });
    expect((await again`select n from kept`)[0]?.n).toBe(42);
    await again.end();
  });
});

describe('embedded Redis', () => {
  const temp = tempDir('redis');
  const redis = new EmbeddedRedis({ root: temp.dir, port: 0, appendfsync: 'always' });
  afterAll(async () => {
    await redis.stop();
    temp.remove();
  });

  it('runs with AOF on and a password that never shows on the command line', async () => {
    const running = await redis.start();
    const password = readFileSync(redis.passwordFile, 'utf8').trim();
    expect(await redisProbe(running.port, password, 'CONFIG GET appendonly')).toBe('*2');
    const cmdline = readFileSync(`/proc/${running.pid}/cmdline`, 'utf8');
    expect(cmdline).not.toContain(password);
    await expect(redisProbe(running.port, 'wrong')).resolves.not.toBe('+PONG');
  });

  it('comes back after SIGKILL with what was written', async () => {
    const before = (await redis.findRunning())!;
    const password = readFileSync(redis.passwordFile, 'utf8').trim();
    expect(await redisProbe(before.port, password, 'SET survivor yes')).toBe('+OK');
    process.kill(before.pid, 'SIGKILL');
    await waitForExit(before.pid, 10_000);
    const after = await redis.start();
    expect(await redisProbe(after.port, password, 'EXISTS survivor')).toBe(':1');
  });
});
