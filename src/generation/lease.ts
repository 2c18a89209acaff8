import type { Sql } from '../db/connection.ts';
import type { GenerationOutput } from './jobs.ts';

/**
 * The lease is the only right to run and to finish a generation. Whoever holds it (and only while it has
 * not expired) may finish the row; a worker that lost it — killed, paused, partitioned — finds its final
 * update refused, so a job that ran twice never finishes twice.
 */
export interface LeasedGeneration {
  id: string;
  userId: string;
  trend: string;
  trendTitle: string;
  promptName: string;
  promptVersion: number;
  promptContent: string;
  params: Record<string, unknown>;
  variants: number;
  photoKey: string;
  attempts: number;
  queuedMs: number;
}

export async function acquireLease(
  sql: Sql,
  id: string,
  owner: string,
  leaseSeconds: number,
): Promise<LeasedGeneration | undefined> {
  const [row] = await sql`
    update generations g set status = 'running', lease_owner = ${owner},
      lease_expires_at = now() + make_interval(secs => ${leaseSeconds}),
      attempts = attempts + 1, started_at = coalesce(started_at, now()), updated_at = now()
    from trends t, prompt_versions v
    where g.id = ${id} and g.deleted_at is null
      and (g.status = 'queued' or (g.status = 'running' and g.lease_expires_at < now()))
      and t.slug = g.trend_slug and v.name = g.prompt_name and v.version = g.prompt_version
    returning g.id, g.user_id, g.trend_slug, t.title, g.prompt_name, g.prompt_version, v.content, g.params,
      g.variants, g.photo_key, g.attempts, extract(epoch from (now() - g.created_at)) * 1000 as queued_ms`;
  if (!row) return undefined;
  return {
    id: row.id as string,
    userId: row.user_id as string,
    trend: row.trend_slug as string,
    trendTitle: row.title as string,
    promptName: row.prompt_name as string,
    promptVersion: row.prompt_version as number,
    promptContent: row.content as string,
    params: row.params as Record<string, unknown>,
    variants: row.variants as number,
    photoKey: row.photo_key as string,
    attempts: row.attempts as number,
    queuedMs: Number(row.queued_ms),
  };
}

/** Extends the lease; false when it was lost (expired and taken, or the generation was deleted). */
export async function renewLease(
  sql: Sql,
  id: string,
  owner: string,
  leaseSeconds: number,
): Promise<boolean> {
  const rows = await sql`
    update generations set lease_expires_at = now() + make_interval(secs => ${leaseSeconds})
    where id = ${id} and lease_owner = ${owner} and status = 'running' and deleted_at is null
    returning id`;
  return rows.length === 1;
}

/** Finishes under the lease, with every output in the same transaction. False: the lease was lost, nothing written. */
export async function finishSucceeded(
  sql: Sql,
  id: string,
  owner: string,
  outputs: GenerationOutput[],
): Promise<boolean> {
  return await sql.begin(async (tx) => {
    const rows = await tx`
      update generations set status = 'succeeded', finished_at = now(), updated_at = now(), error = null,
        lease_owner = null, lease_expires_at = null
      where id = ${id} and lease_owner = ${owner} and status = 'running' and deleted_at is null
      returning id`;
    if (rows.length === 0) return false;
    for (const output of outputs) {
      await tx`insert into generation_outputs (generation_id, variant, key, preview_key)
        values (${id}, ${output.variant}, ${output.key}, ${output.previewKey})`;
    }
    return true;
  });
}

export async function finishFailed(sql: Sql, id: string, owner: string, reason: string): Promise<boolean> {
  const rows = await sql`
    update generations set status = 'failed', error = ${reason}, finished_at = now(), updated_at = now(),
      lease_owner = null, lease_expires_at = null
    where id = ${id} and lease_owner = ${owner} and status = 'running'
    returning id`;
  return rows.length === 1;
}

/** Gives the lease back after a transient error: the row is queued again for the retry. */
export async function releaseForRetry(sql: Sql, id: string, owner: string, reason: string): Promise<boolean> {
  const rows = await sql`
    update generations set status = 'queued', error = ${reason}, updated_at = now(), lease_owner = null, lease_expires_at = null
    where id = ${id} and lease_owner = ${owner} and status = 'running'
    returning id`;
  return rows.length === 1;
}
