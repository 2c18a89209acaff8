import type { Sql } from '../db/connection.ts';
import { versionContent } from '../prompts/index.ts';
import { trendTitle } from '../trends/trends.ts';
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

/** A generation's trend or pinned version is gone: impossible under the foreign keys, so never leased. */
class MissingReferenceError extends Error {}

/**
 * Takes the lease on a queued generation (or one whose lease expired), with the trend title and the pinned
 * prompt text it runs with, all in one transaction; undefined when the generation is not there to take.
 */
export async function acquireLease(
  sql: Sql,
  id: string,
  owner: string,
  leaseSeconds: number,
): Promise<LeasedGeneration | undefined> {
  try {
    return await sql.begin(async (tx) => {
      const [row] = await tx`
        update generations set status = 'running', lease_owner = ${owner},
          lease_expires_at = now() + make_interval(secs => ${leaseSeconds}),
          attempts = attempts + 1, started_at = coalesce(started_at, now()), updated_at = now()
        where id = ${id} and deleted_at is null
          and (status = 'queued' or (status = 'running' and lease_expires_at < now()))
        returning id, user_id, trend_slug, prompt_name, prompt_version, params, variants, photo_key, attempts,
          extract(epoch from (now() - created_at)) * 1000 as queued_ms`;
      if (!row) return undefined;
      const title = await trendTitle(tx, row.trend_slug as string);
      const content = await versionContent(tx, row.prompt_name as string, row.prompt_version as number);
      if (title === undefined || content === undefined) throw new MissingReferenceError();
      return {
        id: row.id as string,
        userId: row.user_id as string,
        trend: row.trend_slug as string,
        trendTitle: title,
        promptName: row.prompt_name as string,
        promptVersion: row.prompt_version as number,
        promptContent: content,
        params: row.params as Record<string, unknown>,
        variants: row.variants as number,
        photoKey: row.photo_key as string,
        attempts: row.attempts as number,
        queuedMs: Number(row.queued_ms),
      };
    });
  } catch (error) {
    if (error instanceof MissingReferenceError) return undefined; // rolled back: the lease was not taken
    throw error;
  }
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
