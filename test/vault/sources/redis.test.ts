import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedRedis } from '../../../src/embedded/redis.ts';
import {
  dumpRedis,
  type RedisRestoreResult,
  redisKeyCount,
  restoreRedis,
  verifyRedis,
} from '../../../src/vault/sources/redis.ts';
import {
  redisCliConnection,
  type ScratchRedis,
  startScratchRedis,
} from '../../../src/vault/sources/redis-tools.ts';
import type { RedisFacts } from '../../../src/vault/sources/types.ts';
import { tempDir } from '../../support/temp.ts';

const work = tempDir('redis-source');
const servers: ScratchRedis[] = [];
let source: EmbeddedRedis;
let sourceUrl: string;
let counter = 0;
const timings: string[] = [];

const dir = (name: string) => path.join(work.dir, `${name}-${++counter}`);

// Redis waits repl-diskless-sync-delay (5 s by default) for more replicas before it sends an RDB: the
// test servers skip that wait (the embedded Redis should too; a managed one refuses SYNC anyway).
const NO_SYNC_DELAY = 'repl-diskless-sync-delay 0';

async function scratch(extraConfig: string[] = []): Promise<string> {
  const server = await startScratchRedis({
    dir: dir('server'),
    extraConfig: [NO_SYNC_DELAY, ...extraConfig],
  });
  servers.push(server);
  return server.url;
}

async function withClient<T>(url: string, fn: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(url);
  try {
    return await fn(client);
  } finally {
    client.disconnect();
  }
}

/** Every type, several databases, TTLs, a binary key, and enough keys for several SCAN batches. */
async function populate(url: string): Promise<number> {
  return await withClient(url, async (r) => {
    await r.set('greeting', 'hello');
    await r.set('session', 'abc', 'PX', 120_000);
    await r.hset('user:1', { name: 'Ada', plan: 'pro' });
    await r.rpush('list', 'a', 'b', 'c');
    await r.sadd('tags', 'x', 'y', 'z');
    await r.zadd('scores', 1, 'one', 2.5, 'two');
    for (let i = 0; i < 3; i++) await r.xadd('events', '*', 'n', String(i));
    await r.set(Buffer.from([0xff, 0x00, 0x01]), Buffer.from([0x00, 0xfe]));
    await r.select(1);
    await r.rpush('bull:jobs', '1', '2');
    await r.set('lock', 'worker-1', 'PX', 60_000);
    await r.select(3);
    const pipe = r.pipeline();
    for (let i = 0; i < 1200; i++) pipe.set(`k:${i}`, `value-${i}`);
    await pipe.exec();
    return 8 + 2 + 1200;
  });
}

/** `db/key` → type, value and PTTL, read back type by type. */
async function contentOf(url: string): Promise<Map<string, { type: string; value: unknown; pttl: number }>> {
  return await withClient(url, async (r) => {
    const out = new Map<string, { type: string; value: unknown; pttl: number }>();
    const info = await r.info('keyspace');
    for (const [, db] of info.matchAll(/^db(\d+):/gm)) {
      await r.select(Number(db));
      for await (const keys of r.scanBufferStream({ count: 500 })) {
        for (const key of keys as Buffer[]) {
          const type = await r.type(key);
          const value =
            type === 'string'
              ? (await r.getBuffer(key))!.toString('base64')
              : type === 'hash'
                ? await r.hgetall(key)
                : type === 'list'
                  ? await r.lrange(key, 0, -1)
                  : type === 'set'
                    ? (await r.smembers(key)).sort()
                    : type === 'zset'
                      ? await r.zrange(key, 0, -1, 'WITHSCORES')
                      : await r.xrange(key, '-', '+');
          out.set(`${db}/${key.toString('base64')}`, { type, value, pttl: await r.pttl(key) });
        }
      }
    }
    return out;
  });
}

/**
 * A restored key's TTL may differ from the original's by at most the time that passed since the backup began
 * (the dump carries relative TTLs, and the two reads are seconds apart on a loaded machine), plus a second.
 */
function expectSameContent(
  actual: Awaited<ReturnType<typeof contentOf>>,
  expected: Awaited<ReturnType<typeof contentOf>>,
  backupStarted: number,
) {
  const allowedMs = Date.now() - backupStarted + 1000;
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [id, want] of expected) {
    const got = actual.get(id)!;
    expect({ id, type: got.type, value: got.value }).toEqual({ id, type: want.type, value: want.value });
    if (want.pttl < 0) expect(got.pttl).toBe(-1);
    else expect(Math.abs(got.pttl - want.pttl)).toBeLessThan(allowedMs);
  }
}

beforeAll(async () => {
  // The source has a password, as the embedded Redis does: the RDB path must authenticate through the env.
  source = new EmbeddedRedis({ root: dir('source'), port: 0, appendfsync: 'everysec' });
  sourceUrl = (await source.start()).url;
  await withClient(sourceUrl, (r) => r.config('SET', ...(NO_SYNC_DELAY.split(' ') as [string, string])));
  await populate(sourceUrl);
});

afterAll(async () => {
  console.log(`redis source (1210 keys): ${timings.join(', ')}`);
  await source?.stop();
  for (const server of servers) await server.stop();
  work.remove();
});

describe.each(['rdb', 'dump'] as const)('Redis source, %s method', (method) => {
  let facts: RedisFacts;
  const backup = dir(`backup-${method}`);

  it(`I7: every type, database and TTL comes back from a ${method} backup`, async () => {
    const backupStarted = Date.now();
    let started = backupStarted;
    facts = await dumpRedis(sourceUrl, backup, { method });
    timings.push(`${method} dump ${Date.now() - started} ms`);
    expect(facts).toMatchObject({ method, keys: 1210, dbs: [0, 1, 3], keysPerDb: { 0: 8, 1: 2, 3: 1200 } });
    expect(existsSync(path.join(backup, method === 'rdb' ? 'dump.rdb' : 'keys.jsonl'))).toBe(true);
    const target = await scratch();
    started = Date.now();
    const result = await restoreRedis(backup, facts, target);
    timings.push(`${method} restore ${Date.now() - started} ms`);
    expect(result).toEqual({ keys: 1210, skippedExpired: 0, expiredPerDb: {} });
    expect(await verifyRedis(target, facts, result)).toEqual({ ok: true, mismatches: [] });
    expectSameContent(await contentOf(target), await contentOf(sourceUrl), backupStarted);
  });

  it('BUSYKEY: without replace an existing key is an error naming it; with replace it is overwritten', async () => {
    const target = await scratch();
    await withClient(target, (r) => r.set('greeting', 'other'));
    await expect(restoreRedis(backup, facts, target)).rejects.toThrow(
      'Redis key "greeting" already exists in db 0 of the target (BUSYKEY): restore with replace to overwrite it.',
    );
    const result = await restoreRedis(backup, facts, target, { replace: true });
    expect(result.keys).toBe(1210);
    expect(await withClient(target, (r) => r.get('greeting'))).toBe('hello');
  });
});

describe('Redis source', () => {
  it('auto takes an RDB from a server that allows SYNC', async () => {
    const facts = await dumpRedis(sourceUrl, dir('auto'));
    expect(facts.method).toBe('rdb');
  });

  it('auto falls back to DUMP key by key when the server refuses SYNC and PSYNC (managed services)', async () => {
    const managed = await scratch(['rename-command SYNC ""', 'rename-command PSYNC ""']);
    await populate(managed);
    await expect(dumpRedis(managed, dir('refused'), { method: 'rdb' })).rejects.toThrow(
      /^redis-cli --rdb failed \(exit code 1\): .*SYNC/,
    );
    const backup = dir('fallback');
    const backupStarted = Date.now();
    const facts = await dumpRedis(managed, backup);
    expect(facts).toMatchObject({ method: 'dump', keys: 1210, dbs: [0, 1, 3] });
    expect(existsSync(path.join(backup, 'dump.rdb'))).toBe(false);
    const target = await scratch();
    const result = await restoreRedis(backup, facts, target);
    expect((await verifyRedis(target, facts, result)).ok).toBe(true);
    expectSameContent(await contentOf(target), await contentOf(managed), backupStarted);
  });

  it('keys whose expiry passed between backup and restore are skipped and counted, by both methods', async () => {
    const short = await scratch();
    await withClient(short, async (r) => {
      await r.set('keep', '1');
      await r.set('brief', '2', 'PX', 1500);
      await r.select(2);
      await r.set('brief2', '3', 'PX', 1500);
    });
    const backups: [string, RedisFacts][] = [];
    for (const method of ['rdb', 'dump'] as const) {
      const backup = dir(`short-${method}`);
      backups.push([backup, await dumpRedis(short, backup, { method })]);
    }
    await new Promise((resolve) => setTimeout(resolve, 1600));
    for (const [backup, facts] of backups) {
      expect(facts.keys).toBe(3);
      const target = await scratch();
      const result: RedisRestoreResult = await restoreRedis(backup, facts, target);
      expect(result).toEqual({ keys: 1, skippedExpired: 2, expiredPerDb: { 0: 1, 2: 1 } });
      expect((await verifyRedis(target, facts, result)).ok).toBe(true);
      expect((await verifyRedis(target, facts)).mismatches).toEqual([
        { db: 0, expected: 2, actual: 1 },
        { db: 2, expected: 1, actual: 0 },
      ]);
      expect(await redisKeyCount(target)).toBe(1);
    }
  });

  it('I7: a damaged or missing RDB is refused by name, never restored as an empty or partial Redis', async () => {
    const backup = dir('damaged');
    const facts = await dumpRedis(sourceUrl, backup, { method: 'rdb' });
    const file = path.join(backup, 'dump.rdb');
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
    writeFileSync(file, bytes);
    const target = await scratch();
    await expect(restoreRedis(backup, facts, target)).rejects.toThrow(
      `The Redis backup ${file} cannot be loaded (damaged, or written by a newer Redis)`,
    );
    rmSync(file);
    await expect(restoreRedis(backup, facts, target)).rejects.toThrow('The Redis backup has no dump.rdb.');
    expect(await redisKeyCount(target)).toBe(0);
  });

  it('gives redis-cli the password through REDISCLI_AUTH, never in argv, and TLS with the CA', async () => {
    const password = decodeURIComponent(new URL(sourceUrl).password);
    const cli = await redisCliConnection(sourceUrl);
    expect(cli.args.join(' ')).not.toContain(password);
    expect(cli.args).toEqual(['-h', new URL(sourceUrl).hostname, '-p', new URL(sourceUrl).port]);
    expect(cli.env.REDISCLI_AUTH).toBe(password);
    const tls = await redisCliConnection('rediss://app:s3cret@cache.example:6380/2?tls_ca=/etc/ca.pem');
    expect(tls.args).toEqual([
      '-h',
      'cache.example',
      '-p',
      '6380',
      '--tls',
      '--cacert',
      '/etc/ca.pem',
      '--sni',
      'cache.example',
      '--user',
      'app',
    ]);
    expect(tls.env.REDISCLI_AUTH).toBe('s3cret');
  });
});
