import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { openDatabase } from '../db/connection.ts';
import { fsyncDirSync } from '../lib/files.ts';

/**
 * "A restore is writing here": set on every destination before a restore writes to it, cleared only when the
 * whole restore succeeded and was verified. A destination that holds data *and* this marker holds the
 * leftovers of an interrupted restore, not live data: the next restore may replace it without --in-place,
 * so rerunning a killed restore just works, and never mixes its result with what the killed one left.
 *
 * - database: its comment (`COMMENT ON DATABASE`) starts with MARKER;
 * - prompts folder `<parent>/<name>`: the file `<parent>/.<name>.restore-incomplete`;
 * - Redis: the key MARKER_KEY in database 0.
 */
export const MARKER = 'trendgen: restore in progress';
export const MARKER_KEY = 'trendgen:restore-in-progress';

function withSql<T>(url: string, fn: (sql: ReturnType<typeof openDatabase>) => Promise<T>): Promise<T> {
  const sql = openDatabase(url, { max: 1 });
  return fn(sql).finally(() => sql.end({ timeout: 5 }));
}

export async function databaseMarked(url: string): Promise<boolean> {
  const [row] = await withSql(
    url,
    (sql) => sql<{ comment: string | null }[]>`
      select shobj_description(oid, 'pg_database') as comment from pg_database where datname = current_database()`,
  );
  return Boolean(row?.comment?.startsWith(MARKER));
}

/** Best effort: a role that may not comment on the database only loses the convenience of a plain rerun. */
export async function markDatabase(url: string, snapshotId: string | undefined): Promise<void> {
  await withSql(url, async (sql) => {
    const [row] = await sql<{ name: string }[]>`select current_database() as name`;
    const ident = `"${row!.name.replaceAll('"', '""')}"`;
    const text = snapshotId === undefined ? 'null' : `'${MARKER} (snapshot ${snapshotId})'`;
    await sql.unsafe(`comment on database ${ident} is ${text}`);
  }).catch(() => {});
}

const dirMarker = (dir: string) => path.join(path.dirname(dir), `.${path.basename(dir)}.restore-incomplete`);

export function dirMarked(dir: string): boolean {
  return existsSync(dirMarker(dir));
}

export function markDir(dir: string, snapshotId: string): void {
  mkdirSync(path.dirname(dir), { recursive: true });
  writeFileSync(dirMarker(dir), `${JSON.stringify({ snapshot: snapshotId, startedAt: new Date() })}\n`);
  fsyncDirSync(path.dirname(dir));
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
  const client = new Redis(url, { maxRetriesPerRequest: 2 });
  try {
    return await fn(client);
  } finally {
    client.disconnect();
  }
}

export const redisMarked = (url: string) =>
  withRedis(url, async (client) => {
    await client.select(0);
    return (await client.exists(MARKER_KEY)) === 1;
  });

export const markRedis = (url: string, snapshotId: string | undefined) =>
  withRedis(url, async (client) => {
    await client.select(0);
    if (snapshotId === undefined) await client.del(MARKER_KEY);
    else await client.set(MARKER_KEY, snapshotId);
  });
