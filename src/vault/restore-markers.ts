import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { openDatabase } from '../db/connection.ts';
import { fsyncDirSync, writeFileAtomicSync } from '../lib/files.ts';
import { createRedisClient } from '../lib/redis-client.ts';
import { tableFacts } from './sources/postgres-facts.ts';

/**
 * "A restore is writing here": set on every destination before a restore writes to it, cleared only when the
 * whole restore succeeded and was verified. A destination that holds data *and* this marker holds the
 * leftovers of an interrupted restore, not live data: the next restore may replace it without --in-place,
 * so rerunning a killed restore just works, and never mixes its result with what the killed one left.
 *
 * A restore that fails records on each mark a fingerprint of what it left (`left`); a later restore replaces
 * a marked destination only while its fingerprint is unchanged, so nothing written after the failure is
 * erased. `trendgen up` refuses to serve a marked destination.
 *
 * - database: its comment (`COMMENT ON DATABASE`) starts with MARKER, and new sessions are read-only by
 *   default (`ALTER DATABASE … SET default_transaction_read_only`), so nothing writes there unasked;
 * - prompts folder `<parent>/<name>`: the file `<parent>/.<name>.restore-incomplete`;
 * - Redis: the key MARKER_KEY in database 0.
 */
export const MARKER = 'trendgen: restore in progress';
export const MARKER_KEY = 'trendgen:restore-in-progress';

/** What a mark says: the snapshot being restored, and the fingerprint of what a failed restore left. */
export interface Mark {
  snapshot: string;
  left?: string;
}

function withSql<T>(url: string, fn: (sql: ReturnType<typeof openDatabase>) => Promise<T>): Promise<T> {
  const sql = openDatabase(url, { max: 1, writable: true });
  return fn(sql).finally(() => sql.end({ timeout: 5 }));
}

const digest = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 32);

export async function databaseMark(url: string): Promise<Mark | undefined> {
  const [row] = await withSql(
    url,
    (sql) => sql<{ comment: string | null }[]>`
      select shobj_description(oid, 'pg_database') as comment from pg_database where datname = current_database()`,
  );
  if (!row?.comment?.startsWith(MARKER)) return undefined;
  const parsed = /\(snapshot ([0-9a-f]+)(?:; left ([0-9a-f]+))?\)/.exec(row.comment);
  return { snapshot: parsed?.[1] ?? 'unknown', ...(parsed?.[2] ? { left: parsed[2] } : {}) };
}

export async function databaseMarked(url: string): Promise<boolean> {
  return (await databaseMark(url)) !== undefined;
}

/**
 * Marked, the database is also read-only by default for every new session, so that nothing (a service
 * started by hand, a client) writes into what an unfinished restore left, even when a killed restore could
 * not fingerprint it; the restore's own sessions ask for writes explicitly. Best effort: a role that may not
 * comment on or alter the database only loses these guards.
 */
export async function markDatabase(
  url: string,
  snapshotId: string | undefined,
  left?: string,
): Promise<void> {
  await withSql(url, async (sql) => {
    const [row] = await sql<{ name: string }[]>`select current_database() as name`;
    const ident = `"${row!.name.replaceAll('"', '""')}"`;
    const detail = left ? `; left ${left}` : '';
    const text = snapshotId === undefined ? 'null' : `'${MARKER} (snapshot ${snapshotId}${detail})'`;
    await sql.unsafe(`comment on database ${ident} is ${text}`).catch(() => {});
    const readOnly =
      snapshotId === undefined
        ? 'reset default_transaction_read_only'
        : 'set default_transaction_read_only = on';
    await sql.unsafe(`alter database ${ident} ${readOnly}`).catch(() => {});
  }).catch(() => {});
}

/** Every user table's rows and digest: any write to them changes it. */
export async function databaseFingerprint(url: string): Promise<string> {
  const facts = await tableFacts(url);
  return digest(JSON.stringify(Object.entries(facts).sort(([a], [b]) => (a < b ? -1 : 1))));
}

const dirMarker = (dir: string) => path.join(path.dirname(dir), `.${path.basename(dir)}.restore-incomplete`);

export function dirMark(dir: string): Mark | undefined {
  let text: string;
  try {
    text = readFileSync(dirMarker(dir), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const { snapshot, left } = JSON.parse(text) as { snapshot?: unknown; left?: unknown };
    return {
      snapshot: typeof snapshot === 'string' ? snapshot : 'unknown',
      ...(typeof left === 'string' ? { left } : {}),
    };
  } catch {
    // A marker cut short by a crash of an older version: still a mark, with nothing recorded.
    return { snapshot: 'unknown' };
  }
}

export function dirMarked(dir: string): boolean {
  return existsSync(dirMarker(dir));
}

/** The marker file is written whole and fsynced with its folder, so a crash cannot leave it half there. */
export function markDir(dir: string, snapshotId: string, left?: string): void {
  const record = { snapshot: snapshotId, startedAt: new Date(), ...(left ? { left } : {}) };
  writeFileAtomicSync(dirMarker(dir), `${JSON.stringify(record)}\n`);
}

/** Names, sizes and contents of every file under `dir`. */
export function dirFingerprint(dir: string): string {
  const hash = createHash('sha256');
  const walk = (at: string, rel: string) => {
    if (!existsSync(at)) return;
    for (const entry of readdirSync(at, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = path.join(at, entry.name);
      const name = `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(full, name);
      else if (entry.isFile()) hash.update(`${name}\0${statSync(full).size}\0`).update(readFileSync(full));
      else hash.update(`${name}\0other\0`);
    }
  };
  walk(dir, '');
  return hash.digest('hex').slice(0, 32);
}

/** Clears the marker, and the staging folders an interrupted restore left beside `dir`. */
export function unmarkDir(dir: string): void {
  const parent = path.dirname(dir);
  const staging = `.${path.basename(dir)}.restoring-`;
  if (existsSync(parent)) {
    for (const name of readdirSync(parent)) {
      if (name.startsWith(staging)) rmSync(path.join(parent, name), { recursive: true, force: true });
    }
  }
  rmSync(dirMarker(dir), { force: true });
  if (existsSync(parent)) fsyncDirSync(parent);
}

async function withRedis<T>(url: string, fn: (client: Redis) => Promise<T>): Promise<T> {
  const client = createRedisClient(url, { maxRetriesPerRequest: 2 });
  try {
    return await fn(client);
  } finally {
    client.disconnect();
  }
}

export const redisMark = (url: string) =>
  withRedis(url, async (client): Promise<Mark | undefined> => {
    await client.select(0);
    const value = await client.get(MARKER_KEY);
    if (value === null) return undefined;
    const [snapshot, left] = value.split(' left ');
    return { snapshot: snapshot!, ...(left ? { left } : {}) };
  });

export const redisMarked = async (url: string) => (await redisMark(url)) !== undefined;

export const markRedis = (url: string, snapshotId: string | undefined, left?: string) =>
  withRedis(url, async (client) => {
    await client.select(0);
    if (snapshotId === undefined) await client.del(MARKER_KEY);
    else await client.set(MARKER_KEY, left ? `${snapshotId} left ${left}` : snapshotId);
  });

/**
 * Keys without an expiry per database, the marker left out: keys that expire on their own would change a
 * count that no one wrote to. Redis holds nothing PostgreSQL cannot rebuild (I4), so counts are enough to
 * notice a service that ran on it.
 */
export async function redisFingerprint(url: string): Promise<string> {
  const { info, marked } = await withRedis(url, async (client) => {
    await client.select(0);
    return { info: await client.info('keyspace'), marked: await client.exists(MARKER_KEY) };
  });
  const persistent = [...info.matchAll(/^db(\d+):keys=(\d+),expires=(\d+)/gm)]
    .map(
      ([, db, keys, expires]) => [db!, Number(keys) - Number(expires) - (db === '0' ? marked : 0)] as const,
    )
    .filter(([, count]) => count > 0);
  return digest(
    persistent
      .map(([db, count]) => `${db}:${count}`)
      .sort()
      .join(','),
  );
}

/** The destinations of one restore, as far as marks go. */
export interface MarkedDestinations {
  parts: readonly string[];
  databaseUrl: string;
  redisUrl: string;
  promptsDir: string;
}

/** What a destination that holds data is: leftovers of an unfinished restore, or written to since. */
export type MarkVerdict = 'unmarked' | 'leftovers' | 'written-since';

const verdict = (mark: Mark | undefined, now: () => Promise<string> | string) =>
  (async (): Promise<MarkVerdict> => {
    if (!mark) return 'unmarked';
    // A killed restore recorded nothing: `up` refuses marked destinations, so no service wrote since.
    if (!mark.left) return 'leftovers';
    return (await now()) === mark.left ? 'leftovers' : 'written-since';
  })();

export async function databaseVerdict(url: string): Promise<MarkVerdict> {
  return verdict(await databaseMark(url), () => databaseFingerprint(url));
}

export async function redisVerdict(url: string): Promise<MarkVerdict> {
  return verdict(await redisMark(url), () => redisFingerprint(url));
}

export async function dirVerdict(dir: string): Promise<MarkVerdict> {
  return verdict(dirMark(dir), () => dirFingerprint(dir));
}

/**
 * After a restore failed: each mark gets the fingerprint of what the restore left, so a later restore can tell
 * whether anything was written there since. Best effort: the failure itself is what the caller reports.
 */
export async function leaveMarks(dest: MarkedDestinations, snapshotId: string): Promise<void> {
  const ignore = () => {};
  if (dest.parts.includes('postgres'))
    await databaseFingerprint(dest.databaseUrl)
      .then((left) => markDatabase(dest.databaseUrl, snapshotId, left))
      .catch(ignore);
  if (dest.parts.includes('redis'))
    await redisFingerprint(dest.redisUrl)
      .then((left) => markRedis(dest.redisUrl, snapshotId, left))
      .catch(ignore);
  if (dest.parts.includes('prompts')) {
    try {
      markDir(dest.promptsDir, snapshotId, dirFingerprint(dest.promptsDir));
    } catch {
      // The folder's disk failed too: the mark stays as it was.
    }
  }
}

/** The marks an unfinished restore left on a service's destinations: which, and of which snapshot. */
export async function unfinishedRestore(
  dest: Omit<MarkedDestinations, 'parts'>,
): Promise<{ snapshot: string; where: string[] } | undefined> {
  const found: Array<[string, Mark | undefined]> = [
    ['the database', dest.databaseUrl ? await databaseMark(dest.databaseUrl) : undefined],
    // Redis unreachable here tells nothing, and holds nothing PostgreSQL cannot rebuild (I4): not a reason to stop.
    ['Redis', dest.redisUrl ? await redisMark(dest.redisUrl).catch(() => undefined) : undefined],
    [`the prompts folder ${dest.promptsDir}`, dirMark(dest.promptsDir)],
  ];
  const marked = found.filter(([, mark]) => mark);
  if (marked.length === 0) return undefined;
  return { snapshot: marked[0]![1]!.snapshot, where: marked.map(([where]) => where) };
}

/** `trendgen restore --accept-partial`: what an unfinished restore left becomes the service's data. */
export async function clearMarks(dest: Omit<MarkedDestinations, 'parts'>): Promise<void> {
  if (dest.databaseUrl) await markDatabase(dest.databaseUrl, undefined);
  if (dest.redisUrl) await markRedis(dest.redisUrl, undefined);
  unmarkDir(dest.promptsDir);
}
