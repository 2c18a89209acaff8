import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';
import { ConnectionUrlError, formatConnectionUrl, parseConnectionUrl } from './connection-url.ts';

/**
 * Every Redis connection of the application is made here, from one connection string:
 *
 * - `redis[s]://[user[:password]@]host[:port][/db][?tls_ca=FILE]`: one server;
 * - `redis[s]+sentinel://[user[:password]@]sentinel[:port][,sentinel…]/master[/db][?sentinel_password=…&tls_ca=FILE]`:
 *   the master that the Sentinels name, followed through failovers.
 *
 * `rediss` speaks TLS to the servers and the Sentinels, verifying their certificates and host names against
 * `tls_ca` (a PEM file) or the system's CAs. The configuration builds this string from REDIS_URL, REDIS_SENTINELS,
 * REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD and REDIS_TLS_CA, so one string travels wherever a URL did.
 */

export interface RedisAddress {
  host: string;
  port: number;
}

export interface RedisTarget {
  tls: boolean;
  /** PEM file of the CAs trusted for the servers' certificates; undefined: the system's. */
  caFile: string | undefined;
  username: string | undefined;
  password: string | undefined;
  db: number;
  /** The server, when no Sentinel is involved. */
  address: RedisAddress | undefined;
  sentinel: { addresses: RedisAddress[]; master: string; password: string | undefined } | undefined;
}

const SCHEMES = ['redis', 'rediss', 'redis+sentinel', 'rediss+sentinel'];
export const DEFAULT_SENTINEL_MASTER = 'mymaster';

/** `host[:port]` as written in a URL or REDIS_SENTINELS (IPv6 in brackets). */
export function parseAddress(text: string, defaultPort: number): RedisAddress {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]/?#@,]+)(?::(\d{1,5}))?$/.exec(text.trim());
  const port = match?.[2] === undefined ? defaultPort : Number(match[2]);
  if (!match || port < 1 || port > 65535)
    throw new ConnectionUrlError(`"${text.trim()}" is not host:port with a port from 1 to 65535`);
  return { host: match[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

const showAddress = ({ host, port }: RedisAddress) => `${host.includes(':') ? `[${host}]` : host}:${port}`;

/** Reads a Redis connection string; errors say what is wrong without quoting it (it may hold a password). */
export function parseRedisUrl(text: string): RedisTarget {
  const url = parseConnectionUrl(text, { multiHost: true });
  if (!SCHEMES.includes(url.scheme))
    throw new ConnectionUrlError(
      'it does not start with redis://, rediss://, redis+sentinel:// or rediss+sentinel://',
    );
  const sentinel = url.scheme.endsWith('+sentinel');
  const segments = url.path.split('/').slice(1);
  const [master, dbText] = sentinel ? [segments[0], segments[1]] : [undefined, segments[0]];
  if (segments.length > (sentinel ? 2 : 1) || !/^\d*$/.test(dbText ?? ''))
    throw new ConnectionUrlError(
      sentinel
        ? 'its path must be /master-name or /master-name/db'
        : 'its path must be a database number, such as /0',
    );
  const caFile = url.params.get('tls_ca') || undefined;
  if (caFile && !url.scheme.startsWith('rediss'))
    throw new ConnectionUrlError('it names a CA (tls_ca) but starts with redis://: TLS needs rediss://');
  if (!sentinel && url.hosts.length > 1)
    throw new ConnectionUrlError('it names several hosts: list Sentinels in REDIS_SENTINELS instead');
  const hosts = url.hosts.filter(Boolean);
  if (sentinel && hosts.length === 0) throw new ConnectionUrlError('it names no Sentinel');
  const base = {
    tls: url.scheme.startsWith('rediss'),
    caFile,
    username: url.username || undefined,
    password: url.password || undefined,
    db: Number(dbText || 0),
  };
  if (!sentinel)
    return { ...base, address: parseAddress(hosts[0] ?? '127.0.0.1', 6379), sentinel: undefined };
  return {
    ...base,
    address: undefined,
    sentinel: {
      addresses: hosts.map((host) => parseAddress(host, 26379)),
      master: decodeURIComponent(master || DEFAULT_SENTINEL_MASTER),
      password: url.params.get('sentinel_password') || undefined,
    },
  };
}

export interface RedisSettings {
  /** REDIS_URL: the server, or with Sentinels the master's credentials, database and scheme (its host unused). */
  url: string | undefined;
  /** REDIS_SENTINELS: `host:port,host:port`. */
  sentinels: string | undefined;
  master: string | undefined;
  sentinelPassword: string | undefined;
  /** REDIS_TLS_CA, an absolute path. */
  caFile: string | undefined;
}

/** The one connection string the settings describe; undefined when neither a URL nor Sentinels are given. */
export function composeRedisUrl(settings: RedisSettings): string | undefined {
  if (!settings.url && !settings.sentinels) return undefined;
  const url = parseConnectionUrl(settings.url ?? (settings.caFile ? 'rediss://' : 'redis://'), {
    multiHost: true,
  });
  const wasSentinel = url.scheme.endsWith('+sentinel');
  const tls = url.scheme.startsWith('rediss');
  if (settings.caFile && !tls)
    throw new ConnectionUrlError(
      'REDIS_TLS_CA needs TLS, but REDIS_URL starts with redis://: write rediss://',
    );
  const params = new URLSearchParams(url.params);
  if (settings.caFile) params.set('tls_ca', settings.caFile);
  if (!settings.sentinels && !wasSentinel) {
    const composed = formatConnectionUrl({ ...url, params });
    parseRedisUrl(composed);
    return composed;
  }
  const segments = url.path.split('/').slice(1);
  // A plain REDIS_URL's path is the database; a sentinel one's is /master/db.
  const [urlMaster, db] = wasSentinel ? [segments[0], segments[1]] : [undefined, segments[0]];
  const master = settings.master ?? (urlMaster || DEFAULT_SENTINEL_MASTER);
  const hosts = settings.sentinels
    ? settings.sentinels.split(',').map((entry) => showAddress(parseAddress(entry, 26379)))
    : url.hosts;
  if (settings.sentinelPassword) params.set('sentinel_password', settings.sentinelPassword);
  const composed = formatConnectionUrl({
    ...url,
    scheme: tls ? 'rediss+sentinel' : 'redis+sentinel',
    hosts,
    path: `/${encodeURIComponent(master)}/${db || '0'}`,
    params,
  });
  parseRedisUrl(composed);
  return composed;
}

/** Where a connection string leads, for messages: never its credentials. */
export function describeRedis(url: string): string {
  try {
    const target = parseRedisUrl(url);
    if (!target.sentinel) return `Redis at ${showAddress(target.address!)}`;
    const sentinels = target.sentinel.addresses.map(showAddress).join(',');
    return `the Redis master "${target.sentinel.master}" of the Sentinels ${sentinels}`;
  } catch {
    return 'Redis (an unreadable URL)';
  }
}

function tlsOptions(target: RedisTarget): { ca?: Buffer } {
  return target.caFile ? { ca: readFileSync(target.caFile) } : {};
}

/** ioredis options for a connection string; `overrides` say how this client retries and waits. */
export function redisOptions(url: string, overrides: RedisOptions = {}): RedisOptions {
  const target = parseRedisUrl(url);
  const tls = target.tls ? tlsOptions(target) : undefined;
  const common: RedisOptions = {
    ...(target.username ? { username: target.username } : {}),
    ...(target.password ? { password: target.password } : {}),
    db: target.db,
    // A master demoted to a replica answers writes with READONLY: reconnect (through the Sentinels) and resend.
    // This, not ioredis's failoverDetector, follows a demotion that keeps connections open: the detector's
    // Sentinel subscriptions outlive quit() (ioredis 5.9) and would keep a stopping process alive.
    reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 2 : false),
  };
  if (!target.sentinel) return { ...common, ...target.address, ...(tls ? { tls } : {}), ...overrides };
  return {
    ...common,
    sentinels: target.sentinel.addresses,
    name: target.sentinel.master,
    ...(target.sentinel.password ? { sentinelPassword: target.sentinel.password } : {}),
    ...(tls ? { tls, sentinelTLS: tls, enableTLSForSentinelMode: true } : {}),
    ...overrides,
  };
}

/** A client for a connection string: one server, or the master the Sentinels name. */
export function createRedisClient(url: string, overrides: RedisOptions = {}): Redis {
  return new (redisClass())(redisOptions(url, overrides));
}

/** A client of one Sentinel of a connection string: its password and TLS, no retries. */
export function sentinelClient(url: string, address: RedisAddress, timeoutMs = 10_000): Redis {
  const target = parseRedisUrl(url);
  const client = new (redisClass())({
    ...address,
    ...(target.sentinel?.password ? { password: target.sentinel.password } : {}),
    ...(target.tls ? { tls: tlsOptions(target) } : {}),
    lazyConnect: true,
    connectTimeout: timeoutMs,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableReadyCheck: false,
  });
  client.on('error', () => {});
  return client;
}

/**
 * The master's address as the Sentinels name it now (or the server's own), for programs that take a host and a
 * port (redis-cli). Asks each Sentinel in turn.
 */
export async function resolveRedisAddress(url: string, timeoutMs = 10_000): Promise<RedisAddress> {
  const target = parseRedisUrl(url);
  if (!target.sentinel) return target.address!;
  const errors: string[] = [];
  for (const address of target.sentinel.addresses) {
    const sentinel = sentinelClient(url, address, timeoutMs);
    try {
      await sentinel.connect();
      const reply = (await sentinel.call('SENTINEL', 'get-master-addr-by-name', target.sentinel.master)) as
        | [string, string]
        | null;
      if (reply) return { host: reply[0], port: Number(reply[1]) };
      errors.push(`${showAddress(address)} does not know it`);
    } catch (error) {
      errors.push(`${showAddress(address)}: ${(error as Error).message}`);
    } finally {
      sentinel.disconnect();
    }
  }
  throw new Error(
    `No Sentinel named the Redis master "${target.sentinel.master}" (${errors.join('; ')}): check REDIS_SENTINELS and REDIS_SENTINEL_MASTER.`,
  );
}

/**
 * ioredis, loaded on the first connection: every command reads REDIS_URL through this module, and most (a backup,
 * a restore without Redis, `--help`) never connect; its import alone is about 20 MB of a process's memory.
 */
function redisClass(): typeof Redis {
  return (createRequire(import.meta.url)('ioredis') as { Redis: typeof Redis }).Redis;
}
