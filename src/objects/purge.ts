import type { BlobInfo, BlobStore } from '../blobstore/blobstore.ts';
import type { Sql } from '../db/connection.ts';
import { OBJECT_KINDS } from './store.ts';

/**
 * Removing bytes from the object store (I3). Each removal is one transaction that holds the object's row (a
 * lock on the tombstoned row, or a placeholder row for an orphan) while the blob is deleted, and records the
 * removal in the same transaction: an upload of the same bytes waits for it and then writes them again
 * (`ObjectStore.record`), and a crash before the commit leaves the row as it was, so the next run deletes the
 * (already missing) blob again and records it. Deleting a missing blob is not an error.
 */

export type PurgeReason = 'tombstoned' | 'orphan' | 'leftover';

/** Keys the object store writes: `<kind>/<aa>/<sha256>.<ext>`; nothing else in the store is ever collected. */
const OBJECT_KEY = new RegExp(`^(${OBJECT_KINDS.join('|')})/([0-9a-f]{2})/([0-9a-f]{64})\\.([a-z0-9]+)$`);

export function parseObjectKey(key: string): { kind: string; sha256: string; extension: string } | undefined {
  const match = OBJECT_KEY.exec(key);
  if (!match || match[2] !== match[3]!.slice(0, 2)) return undefined;
  return { kind: match[1]!, sha256: match[3]!, extension: match[4]! };
}

/** Tombstoned before `cutoff` and not purged yet, oldest first. */
export async function tombstonedBefore(
  sql: Sql,
  cutoff: Date,
  limit: number,
): Promise<Array<{ key: string; size: number; deletedAt: Date }>> {
  const rows = await sql`
    select key, size, deleted_at from objects
    where deleted_at is not null and purged_at is null and deleted_at < ${cutoff}
    order by deleted_at, key limit ${limit}`;
  return rows.map((row) => ({
    key: row.key as string,
    size: Number(row.size),
    deletedAt: row.deleted_at as Date,
  }));
}

async function addTotals(tx: Sql, reason: PurgeReason, items: number, bytes: number): Promise<void> {
  await tx`
    insert into object_purge_totals (reason, items, bytes) values (${reason}, ${items}, ${bytes})
    on conflict (reason) do update
      set items = object_purge_totals.items + excluded.items, bytes = object_purge_totals.bytes + excluded.bytes`;
}

/** A hook between deleting a blob and committing its record: tests stop a real process there. */
export type AfterDelete = (key: string) => Promise<void> | void;

/**
 * Removes a tombstoned object's bytes when its row is still tombstoned before `cutoff` and not purged; the row
 * keeps its tombstone and gets `purged_at`. Returns the bytes removed, or undefined when the row changed (an
 * upload brought it back, or another collector got there first).
 */
export async function purgeTombstoned(
  sql: Sql,
  blobs: BlobStore,
  key: string,
  cutoff: Date,
  afterDelete?: AfterDelete,
): Promise<number | undefined> {
  return await sql.begin(async (tx) => {
    const [row] = await tx`
      select size from objects
      where key = ${key} and deleted_at is not null and deleted_at < ${cutoff} and purged_at is null
      for update skip locked`;
    if (!row) return undefined;
    await blobs.delete(key);
    await afterDelete?.(key);
    await tx`update objects set purged_at = now() where key = ${key}`;
    await addTotals(tx as unknown as Sql, 'tombstoned', 1, Number(row.size));
    return Number(row.size);
  });
}

/** How many rows the objects index holds, live or not. */
export async function indexedObjects(sql: Sql): Promise<number> {
  const [row] = await sql`select count(*)::bigint as n from objects`;
  return Number(row?.n ?? 0);
}

/** Of `keys`, those that have a row in the objects index (live, tombstoned or purged). */
export async function keysWithRows(sql: Sql, keys: string[]): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const rows = await sql`select key from objects where key = any(${keys})`;
  return new Set(rows.map((row) => row.key as string));
}

/**
 * Removes a blob that has no row. A purged placeholder row is inserted first and committed with the removal:
 * an upload that committed its row meanwhile wins (nothing is removed), and one that commits later finds the
 * placeholder and writes its bytes again. Returns whether the blob was removed.
 */
export async function purgeOrphan(
  sql: Sql,
  blobs: BlobStore,
  info: BlobInfo,
  afterDelete?: AfterDelete,
): Promise<boolean> {
  const parsed = parseObjectKey(info.key);
  if (!parsed) return false;
  return await sql.begin(async (tx) => {
    const inserted = await tx`
      insert into objects (key, sha256, size, content_type, kind, deleted_at, purged_at)
      values (${info.key}, ${parsed.sha256}, ${info.size}, ${`orphan/${parsed.extension}`}, ${parsed.kind}, now(), now())
      on conflict (key) do nothing returning key`;
    if (inserted.length === 0) return false;
    await blobs.delete(info.key);
    await afterDelete?.(info.key);
    await addTotals(tx as unknown as Sql, 'orphan', 1, info.size);
    return true;
  });
}

/** Local files left by crashed writers, counted beside the objects. */
export async function recordLeftovers(sql: Sql, items: number, bytes: number): Promise<void> {
  if (items > 0) await addTotals(sql, 'leftover', items, bytes);
}

/** Everything removed since the beginning, by reason (`trendgen_objects_purged_total`). */
export async function purgeTotals(
  sql: Sql,
): Promise<Array<{ reason: string; items: number; bytes: number }>> {
  const rows = await sql`select reason, items, bytes from object_purge_totals order by reason`;
  return rows.map((row) => ({
    reason: row.reason as string,
    items: Number(row.items),
    bytes: Number(row.bytes),
  }));
}

/** The keys whose bytes the collector removed: an in-place restore leaves them out. */
export async function purgedKeys(sql: Sql): Promise<Set<string>> {
  const [present] = await sql`
    select count(*) = 1 as ok from information_schema.columns
    where table_name = 'objects' and column_name = 'purged_at' and table_schema = current_schema()`;
  if (!present?.ok) return new Set();
  const rows = await sql`select key from objects where purged_at is not null and deleted_at is not null`;
  return new Set(rows.map((row) => row.key as string));
}

/**
 * In a restored database, the rows of objects whose bytes were removed before the restore (and so were not
 * written back): tombstoned and purged, as they were in the database the restore replaced. Returns how many.
 */
export async function markPurged(sql: Sql, keys: string[]): Promise<number> {
  if (keys.length === 0) return 0;
  const rows = await sql`
    update objects set deleted_at = coalesce(deleted_at, now()), purged_at = coalesce(purged_at, now())
    where key = any(${keys}) and purged_at is null returning key`;
  return rows.length;
}

/** Recorded by every restore of this database (see `object_store_restores`). */
export async function recordRestore(sql: Sql): Promise<void> {
  await sql`insert into object_store_restores default values`;
}

/** When this database was last restored, if ever. */
export async function lastRestore(sql: Sql): Promise<Date | undefined> {
  const [row] = await sql`select max(restored_at) as at from object_store_restores`;
  return (row?.at as Date | null) ?? undefined;
}
