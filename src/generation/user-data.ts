import type { Sql } from '../db/connection.ts';
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
    const candidates = await tx`
      select photo_key as key from generations where user_id = ${userId}
      union select o.key from generation_outputs o join generations g on g.id = o.generation_id where g.user_id = ${userId}
      union select o.preview_key from generation_outputs o join generations g on g.id = o.generation_id where g.user_id = ${userId}`;
    // Content addressing means two users can share identical bytes: keep what anyone else still refers to.
    const keys = candidates.map((row) => row.key as string).filter(Boolean);
    const stillUsed = await tx`
      select g.photo_key as key from generations g where g.photo_key = any(${keys}) and g.deleted_at is null
      union select o.key from generation_outputs o join generations g on g.id = o.generation_id
        where o.key = any(${keys}) and g.deleted_at is null
      union select o.preview_key from generation_outputs o join generations g on g.id = o.generation_id
        where o.preview_key = any(${keys}) and g.deleted_at is null`;
    const keep = new Set([
      ...stillUsed.map((row) => row.key as string),
      ...(await exampleKeysAmong(tx, keys)),
    ]);
    const tombstoned = await tombstoneObjects(
      tx,
      keys.filter((key) => !keep.has(key)),
    );
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
