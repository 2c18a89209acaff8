import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import type { Redis } from 'ioredis';
import { createRedisClient } from '../../lib/redis-client.ts';
import { redisCliConnection, runCli, withRdb } from './redis-tools.ts';
import { directoryProgress, directoryStats, type RedisFacts, type SnapshotSource } from './types.ts';

/**
 * The Redis source of a snapshot: an RDB taken over the replication protocol where the server allows
 * it, else one DUMP payload per key (managed services refuse SYNC). Either way the restore goes key by
 * key with RESTORE, so it works into any server, managed ones included.
 */

// A type, not an interface: callers store it in a Record<string, unknown> report.
export type RedisRestoreResult = {
  keys: number;
  /** Keys whose expiry time passed between the backup and the restore: not restored. */
  skippedExpired: number;
  expiredPerDb: Record<string, number>;
};

type Entry = { key: Buffer; ttl: number; value: Buffer };
/** `gone`: keys that SCAN listed but that were deleted or expired before DUMP reached them. */
type Batch = { db: number; entries: Entry[]; gone: number };

const connect = (url: string) => createRedisClient(url, { maxRetriesPerRequest: 2, connectTimeout: 10_000 });

/** `db` → key count, from INFO keyspace (only databases that hold keys are listed). */
async function keyspaceOf(client: Redis): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const match of (await client.info('keyspace')).matchAll(/^db(\d+):keys=(\d+)/gm)) {
    counts[match[1]!] = Number(match[2]);
  }
  return counts;
}

export async function redisKeyspace(url: string): Promise<Record<string, number>> {
  const client = connect(url);
  return await keyspaceOf(client).finally(() => client.disconnect());
}

export async function redisKeyCount(url: string): Promise<number> {
  return Object.values(await redisKeyspace(url)).reduce((a, b) => a + b, 0);
}

const dbsOf = (counts: Record<string, number>) =>
  Object.keys(counts)
    .map(Number)
    .sort((a, b) => a - b);

/** Every key of the given databases with its DUMP payload and PTTL, in pipelined batches (bounded memory). */
async function* scanEntries(client: Redis, dbs: number[]): AsyncGenerator<Batch> {
  for (const db of dbs) {
    await client.select(db);
    // SCAN may return a key twice while the table rehashes; a duplicate would be a BUSYKEY at restore.
    const seen = new Set<string>();
    let cursor = '0';
    do {
      const [next, found] = await client.scanBuffer(cursor, 'COUNT', 500);
      cursor = next.toString();
      const keys = found.filter((key) => {
        const id = key.toString('latin1');
        return seen.has(id) ? false : Boolean(seen.add(id));
      });
      if (keys.length === 0) continue;
      const pipe = client.pipeline();
      for (const key of keys) pipe.dumpBuffer(key).pttl(key);
      const replies = (await pipe.exec()) ?? [];
      const batch: Batch = { db, entries: [], gone: 0 };
      keys.forEach((key, i) => {
        const [dumpError, value] = replies[2 * i] ?? [];
        const [ttlError, ttl] = replies[2 * i + 1] ?? [];
        if (dumpError || ttlError) throw dumpError ?? ttlError;
        if (!value || ttl === -2 || ttl === 0) batch.gone++;
        else batch.entries.push({ key, ttl: Number(ttl), value: value as Buffer });
      });
      yield batch;
    } while (cursor !== '0');
  }
}

/**
 * Dumps Redis into `outDir`: `dump.rdb` over the replication protocol, or `keys.jsonl` (one
 * `{db, key, ttl, value}` line per key, key and DUMP payload in base64, ttl in ms as of `takenAt`, -1 for
 * none) when the server refuses SYNC. An RDB is loaded once in a scratch server: that proves it is
 * readable (I7) and gives exact key counts.
 */
export async function dumpRedis(
  redisUrl: string,
  outDir: string,
  options: { method?: 'auto' | 'rdb' | 'dump' } = {},
): Promise<RedisFacts> {
  const method = options.method ?? 'auto';
  mkdirSync(outDir, { recursive: true });
  const takenAt = Date.now();
  if (method !== 'dump') {
    const file = path.join(outDir, 'dump.rdb');
    try {
      const cli = await redisCliConnection(redisUrl);
      await runCli([...cli.args, '--rdb', file], cli.env);
      const keysPerDb = await withRdb(file, keyspaceOf);
      return factsOf('rdb', keysPerDb, takenAt);
    } catch (error) {
      rmSync(file, { force: true });
      if (method === 'rdb') throw error;
    }
  }
  const client = connect(redisUrl);
  const out = createWriteStream(path.join(outDir, 'keys.jsonl'), { mode: 0o600 });
  const keysPerDb: Record<string, number> = {};
  try {
    for await (const batch of scanEntries(client, dbsOf(await keyspaceOf(client)))) {
      // TTLs are stated as of takenAt, so the restore can tell which keys expired meanwhile.
      const shift = Date.now() - takenAt;
      for (const { key, ttl, value } of batch.entries) {
        const [k, v] = [key.toString('base64'), value.toString('base64')];
        const line = JSON.stringify({ db: batch.db, key: k, ttl: ttl < 0 ? -1 : ttl + shift, value: v });
        if (!out.write(`${line}\n`)) await once(out, 'drain');
      }
      if (batch.entries.length) keysPerDb[batch.db] = (keysPerDb[batch.db] ?? 0) + batch.entries.length;
    }
    out.end();
    await finished(out);
  } finally {
    out.destroy();
    client.disconnect();
  }
  return factsOf('dump', keysPerDb, takenAt);
}

function factsOf(
  method: RedisFacts['method'],
  keysPerDb: Record<string, number>,
  takenAt: number,
): RedisFacts {
  const keys = Object.values(keysPerDb).reduce((a, b) => a + b, 0);
  return { method, keys, dbs: dbsOf(keysPerDb), keysPerDb, takenAt };
}

/** Key names for messages: as text when printable, else in base64. */
function showKey(key: Buffer): string {
  const text = key.toString('utf8');
  const printable = Buffer.from(text, 'utf8').equals(key) && !/[\u0000-\u001f\u007f]/.test(text);
  return printable ? `"${text.slice(0, 200)}"` : `base64:${key.toString('base64').slice(0, 200)}`;
}

/** A `keys.jsonl` backup in batches per database; keys whose expiry time has passed are counted, not yielded. */
async function* readKeyLines(
  file: string,
  takenAt: number,
  expired: (db: number) => void,
): AsyncGenerator<Batch> {
  let batch: Batch = { db: -1, entries: [], gone: 0 };
  for await (const line of createInterface({
    input: createReadStream(file),
    crlfDelay: Number.POSITIVE_INFINITY,
  })) {
    if (!line) continue;
    const { db, key, ttl, value } = JSON.parse(line) as {
      db: number;
      key: string;
      ttl: number;
      value: string;
    };
    const left = ttl < 0 ? -1 : ttl - (Date.now() - takenAt);
    if (ttl >= 0 && left <= 0) {
      expired(db);
      continue;
    }
    if (db !== batch.db || batch.entries.length >= 500) {
      if (batch.entries.length) yield batch;
      batch = { db, entries: [], gone: 0 };
    }
    batch.entries.push({ key: Buffer.from(key, 'base64'), ttl: left, value: Buffer.from(value, 'base64') });
  }
  if (batch.entries.length) yield batch;
}

/** RESTOREs each batch in one pipeline into its database; returns how many keys it restored. */
async function restoreBatches(
  client: Redis,
  batches: AsyncIterable<Batch>,
  replace: boolean,
): Promise<number> {
  let restored = 0;
  let selected = -1;
  for await (const { db, entries } of batches) {
    if (db !== selected) await client.select(db);
    selected = db;
    const pipe = client.pipeline();
    for (const { key, ttl, value } of entries) {
      // RESTORE takes a TTL relative to now; 0 means none.
      if (replace) pipe.restore(key, Math.max(ttl, 0), value, 'REPLACE');
      else pipe.restore(key, Math.max(ttl, 0), value);
    }
    const replies = (await pipe.exec()) ?? [];
    replies.forEach(([error], i) => {
      if (!error) return;
      const key = showKey(entries[i]!.key);
      if (error.message.startsWith('BUSYKEY')) {
        throw new Error(
          `Redis key ${key} already exists in db ${db} of the target (BUSYKEY): restore with replace to overwrite it.`,
        );
      }
      throw new Error(`Redis refused to restore key ${key} in db ${db}: ${error.message}.`);
    });
    restored += entries.length;
  }
  return restored;
}

/**
 * Restores a Redis backup key by key into `targetRedisUrl` (its databases selected as in the backup).
 * Expiry times are kept: a key that expires one hour after the backup expires at that moment, and is
 * skipped when that moment has passed. Without `replace`, a key already in the target is an error.
 */
export async function restoreRedis(
  inDir: string,
  facts: RedisFacts,
  targetRedisUrl: string,
  options: { replace?: boolean } = {},
): Promise<RedisRestoreResult> {
  const target = connect(targetRedisUrl);
  const replace = options.replace ?? false;
  const expiredPerDb: Record<string, number> = {};
  const expired = (db: number | string, n = 1) => {
    if (n > 0) expiredPerDb[db] = (expiredPerDb[db] ?? 0) + n;
  };
  let keys: number;
  try {
    if (facts.method === 'rdb') {
      keys = await withRdb(path.join(inDir, 'dump.rdb'), async (source) => {
        const loaded = await keyspaceOf(source);
        // The RDB holds absolute expiry times: the loader already dropped the keys that expired since.
        for (const [db, n] of Object.entries(facts.keysPerDb)) expired(db, n - (loaded[db] ?? 0));
        const batches = async function* () {
          for await (const batch of scanEntries(source, dbsOf(loaded))) {
            expired(batch.db, batch.gone);
            yield batch;
          }
        };
        return await restoreBatches(target, batches(), replace);
      });
    } else {
      const batches = readKeyLines(path.join(inDir, 'keys.jsonl'), facts.takenAt, expired);
      keys = await restoreBatches(target, batches, replace);
    }
  } finally {
    target.disconnect();
  }
  const skippedExpired = Object.values(expiredPerDb).reduce((a, b) => a + b, 0);
  return { keys, skippedExpired, expiredPerDb };
}

/**
 * Compares the key count of each database with the backup's, less the keys the restore skipped as
 * expired. TTLs were restored relative to the restore, so a key with a short one may expire before
 * this runs: verify right after the restore.
 */
export async function verifyRedis(
  url: string,
  facts: RedisFacts,
  restored?: Pick<RedisRestoreResult, 'expiredPerDb'>,
): Promise<{ ok: boolean; mismatches: { db: number; expected: number; actual: number }[] }> {
  const actual = await redisKeyspace(url);
  const mismatches: { db: number; expected: number; actual: number }[] = [];
  for (const db of new Set([...Object.keys(facts.keysPerDb), ...Object.keys(actual)])) {
    const want = (facts.keysPerDb[db] ?? 0) - (restored?.expiredPerDb[db] ?? 0);
    if (want !== (actual[db] ?? 0))
      mismatches.push({ db: Number(db), expected: want, actual: actual[db] ?? 0 });
  }
  return { ok: mismatches.length === 0, mismatches };
}

/**
 * Redis, dumped after the database: it is derived state (I4), kept so a restore needs no rebuild. Restored key
 * by key into the server (flushed first when `clear`); the drill verifies the key counts with verifyRedis.
 */
export function redisSource(redisUrl: string): SnapshotSource<RedisFacts> {
  return {
    name: 'redis',
    backup: async (ctx) => {
      ctx.progress('redis', 'dumping');
      const dir = path.join(ctx.scratch, 'redis');
      const facts = await dumpRedis(redisUrl, dir);
      const { treeId, stats } = await ctx.repo.storeDirectory(dir, {
        onProgress: directoryProgress(ctx, 'redis'),
      });
      return { tree: treeId, facts, stats: directoryStats(stats) };
    },
    restore: async (ctx) => {
      ctx.progress('redis');
      if (ctx.clear) {
        const client = connect(redisUrl);
        try {
          await client.flushall();
        } finally {
          client.disconnect();
        }
        await ctx.cleared();
      }
      const dir = path.join(ctx.scratch, 'redis');
      // Scratch: read at once, and a crash restores it again.
      await ctx.repo.restoreTree(ctx.tree, dir, { durable: false });
      return await restoreRedis(dir, ctx.facts!, redisUrl, { replace: ctx.overwrite });
    },
  };
}
