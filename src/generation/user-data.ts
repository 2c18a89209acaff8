import type { Sql, TransactionSql } from '../db/connection.ts';
import { tombstoneObjects } from '../objects/store.ts';
import { exampleKeysAmong } from '../trends/trends.ts';

export interface UserDeletion {
  id: number;
  userId: string;
  requestedAt: Date;
  generations: number;
  objects: number;
}

/** Every deletion recorded, oldest first: what the deletion ledger on each backup target must hold. */
export async function listUserDeletions(
  sql: Sql,
): Promise<Array<{ id: number; userId: string; requestedAt: Date }>> {
  const rows = await sql`select id, user_id, requested_at from user_deletions order by id`;
  return rows.map((row) => ({
    id: Number(row.id),
    userId: row.user_id as string,
    requestedAt: row.requested_at as Date,
  }));
}

/**
 * The objects a user's generations refer to (photos, results, previews) that no other user's live generation
 * and no trend example refers to: content addressing means two users can share identical bytes.
 */
async function keysOnlyUserHolds(sql: Sql | TransactionSql, userId: string): Promise<string[]> {
  const candidates = await sql`
    select photo_key as key from generations where user_id = ${userId}
    union select o.key from generation_outputs o join generations g on g.id = o.generation_id where g.user_id = ${userId}
    union select o.preview_key from generation_outputs o join generations g on g.id = o.generation_id where g.user_id = ${userId}`;
  const keys = candidates.map((row) => row.key as string).filter(Boolean);
  const others = sql`g.deleted_at is null and g.user_id <> ${userId}`;
  const stillUsed = await sql`
    select g.photo_key as key from generations g where g.photo_key = any(${keys}) and ${others}
    union select o.key from generation_outputs o join generations g on g.id = o.generation_id
      where o.key = any(${keys}) and ${others}
    union select o.preview_key from generation_outputs o join generations g on g.id = o.generation_id
      where o.preview_key = any(${keys}) and ${others}`;
  const keep = new Set([
    ...stillUsed.map((row) => row.key as string),
    ...(await exampleKeysAmong(sql, keys)),
  ]);
  return keys.filter((key) => !keep.has(key));
}

export interface UserDataSummary {
  user: string;
  generations: number;
  objects: number;
  bytes: number;
  recent: Array<{ id: string; status: string; trend: string; createdAt: string }>;
}

/** What deleting a user's data would remove, for the console to show before it asks to confirm. */
export async function userDataSummary(sql: Sql, userId: string): Promise<UserDataSummary> {
  const keys = await keysOnlyUserHolds(sql, userId);
  const [counts] = await sql<{ generations: number; objects: number; bytes: string }[]>`
    select (select count(*)::int from generations where user_id = ${userId} and deleted_at is null) as generations,
           count(*)::int as objects, coalesce(sum(size), 0)::text as bytes
    from objects where key = any(${keys}) and deleted_at is null`;
  const recent = await sql<{ id: string; status: string; trend: string; createdAt: Date }[]>`
    select id, status, trend_slug as trend, created_at as "createdAt" from generations
    where user_id = ${userId} and deleted_at is null order by created_at desc limit 10`;
  return {
    user: userId,
    generations: counts?.generations ?? 0,
    objects: counts?.objects ?? 0,
    bytes: Number(counts?.bytes ?? 0),
    recent: recent.map((r) => ({ ...r, createdAt: r.createdAt.toISOString() })),
  };
}

/**
 * Deletes a user's photos and results (I3): in one transaction the generations are hidden (open ones are
 * failed so no worker can finish them), the objects only this user refers to are tombstoned — answers stop at
 * once, the bytes stay until the backup retention window has passed — and a deletion record is written so
 * that the deletion can be re-applied after a restore.
 */
export async function deleteUserData(sql: Sql, userId: string): Promise<UserDeletion> {
  return await sql.begin(async (tx) => {
    const generations = await tx`
      update generations set deleted_at = now(), updated_at = now(), lease_owner = null, lease_expires_at = null,
        status = case when status in ('queued', 'running') then 'failed' else status end,
        error = case when status in ('queued', 'running') then 'Deleted at the user''s request.' else error end
      where user_id = ${userId} and deleted_at is null
      returning id, photo_key`;
    const ids = generations.map((row) => row.id as string);
    const tombstoned = await tombstoneObjects(tx, await keysOnlyUserHolds(tx, userId));
    const [record] = await tx`
      insert into user_deletions (user_id, generations, objects) values (${userId}, ${ids.length}, ${tombstoned})
      returning id, user_id, requested_at, generations, objects`;
    return {
      id: Number(record!.id),
      userId: record!.user_id as string,
      requestedAt: record!.requested_at as Date,
      generations: record!.generations as number,
      objects: record!.objects as number,
    };
  });
}
