import type { Sql } from '../db/connection.ts';

export interface UserDeletion {
  id: number;
  userId: string;
  requestedAt: Date;
  generations: number;
  objects: number;
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
    const tombstoned = await tx`
      update objects set deleted_at = now()
      where deleted_at is null and key = any(${candidates.map((row) => row.key as string)})
        and not exists (select 1 from generations g where g.photo_key = objects.key and g.deleted_at is null)
        and not exists (select 1 from generation_outputs o join generations g on g.id = o.generation_id
                        where (o.key = objects.key or o.preview_key = objects.key) and g.deleted_at is null)
        and not exists (select 1 from trends t where t.example_key = objects.key)
      returning key`;
    const [record] = await tx`
      insert into user_deletions (user_id, generations, objects) values (${userId}, ${ids.length}, ${tombstoned.length})
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
