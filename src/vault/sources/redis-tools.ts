import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { findRedisBinary } from '../../embedded/binaries.ts';
import { EmbeddedRedis } from '../../embedded/redis.ts';
import { createRedisClient, parseRedisUrl, resolveRedisAddress } from '../../lib/redis-client.ts';

/** The programs the Redis source runs: redis-cli for an RDB, and a throwaway server to read one. */

const connect = (url: string) => createRedisClient(url, { maxRetriesPerRequest: 2, connectTimeout: 10_000 });

/**
 * redis-cli arguments and environment for the server, or the master the Sentinels name now (an RDB taken from
 * it holds every write it acknowledged): TLS with the same CA, the password in REDISCLI_AUTH, never in argv (`ps`).
 */
export async function redisCliConnection(url: string): Promise<{ args: string[]; env: NodeJS.ProcessEnv }> {
  const target = parseRedisUrl(url);
  const { host, port } = await resolveRedisAddress(url);
  const tls = target.tls
    ? ['--tls', ...(target.caFile ? ['--cacert', target.caFile] : []), ...(isIP(host) ? [] : ['--sni', host])]
    : [];
  const user = target.username && target.username !== 'default' ? ['--user', target.username] : [];
  const args = ['-h', host, '-p', String(port), ...tls, ...user];
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.REDISCLI_AUTH;
  if (target.password) env.REDISCLI_AUTH = target.password;
  return { args, env };
}

/** Keeps the last lines a child prints, for error messages. */
function outputTail(child: ChildProcess): () => string {
  let text = '';
  const keep = (chunk: Buffer) => {
    text = (text + chunk.toString()).slice(-2000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => text.trim().split('\n').slice(-3).join(' ').replace(/\s+/g, ' ');
}

export async function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const child = spawn(findRedisBinary('redis-cli'), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail = outputTail(child);
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`redis-cli --rdb failed (exit code ${code}): ${tail() || 'no output'}.`);
}

export interface ScratchRedis {
  url: string;
  stop(): Promise<void>;
}

/**
 * A throwaway redis-server (the embedded one, keeping nothing) on a free local port with a random password: it
 * loads an RDB (`rdbFile`) so its keys can be read one by one. `extraConfig` lines are appended to its config.
 */
export async function startScratchRedis(options: {
  dir: string;
  rdbFile?: string;
  extraConfig?: string[];
}): Promise<ScratchRedis> {
  mkdirSync(path.join(options.dir, 'redis'), { recursive: true, mode: 0o700 });
  if (options.rdbFile)
    symlinkSync(path.resolve(options.rdbFile), path.join(options.dir, 'redis', 'dump.rdb'));
  const server = new EmbeddedRedis({
    root: options.dir,
    port: 0,
    appendfsync: 'everysec',
    persistence: 'none',
    ...(options.extraConfig ? { extraConfig: options.extraConfig } : {}),
  });
  const running = await server.start();
  return { url: running.url, stop: () => server.stop(10_000) };
}

/** Loads an RDB in a scratch server for the time of `fn`: proves the file loads, and reads it key by key. */
export async function withRdb<T>(rdbFile: string, fn: (client: Redis) => Promise<T>): Promise<T> {
  // A missing file would give an empty server, and an empty restore that looks fine.
  if (!existsSync(rdbFile)) throw new Error(`The Redis backup has no ${path.basename(rdbFile)}.`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'trendgen-redis-'));
  try {
    const scratch = await startScratchRedis({ dir, rdbFile }).catch((error: Error) => {
      throw new Error(
        `The Redis backup ${rdbFile} cannot be loaded (damaged, or written by a newer Redis): ${error.message}`,
      );
    });
    const client = connect(scratch.url);
    try {
      return await fn(client);
    } finally {
      client.disconnect();
      await scratch.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
