import type { Queue } from 'bullmq';
import type { Sql } from '../db/connection.ts';
import { bumpCounter } from './jobs.ts';
import { enqueue, type GenerationJobData } from './queue.ts';

export interface ReconcileReport {
  /** Running rows whose lease expired (their worker died), handed back to the queue. */
  leasesExpired: number;
  /** Queued rows that had no job in Redis (a wiped or restarted Redis, an enqueue that failed), queued again. */
  requeued: number;
}

/**
 * Rebuilds the queue from PostgreSQL (I4): whatever Redis lost, every open generation ends up with a job.
 * Safe to run at any time and from several processes: every step is conditional or idempotent.
 */
export async function reconcile(sql: Sql, queue: Queue<GenerationJobData>): Promise<ReconcileReport> {
  const expired = await sql`
    update generations set status = 'queued', lease_owner = null, lease_expires_at = null, updated_at = now()
    where status = 'running' and lease_expires_at < now() and deleted_at is null
    returning id`;
  const queued =
    await sql`select id from generations where status = 'queued' and deleted_at is null order by created_at`;
  const missing: string[] = [];
  const ids = queued.map((row) => row.id as string);
  for (let i = 0; i < ids.length; i += 100) {
    const batch = ids.slice(i, i + 100);
    const jobs = await Promise.all(batch.map((id) => queue.getJob(id)));
    batch.forEach((id, index) => {
      if (!jobs[index]) missing.push(id);
    });
  }
  await enqueue(queue, missing);
  if (expired.length) await bumpCounter(sql, 'reconciler_repairs', 'lease_expired', expired.length);
  if (missing.length) await bumpCounter(sql, 'reconciler_repairs', 'requeued', missing.length);
  return { leasesExpired: expired.length, requeued: missing.length };
}
