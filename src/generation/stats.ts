import type { Sql } from '../db/connection.ts';

/** Figures about generations for metrics, read from the rows every replica shares. */

export async function countGenerationsByStatus(sql: Sql): Promise<Map<string, number>> {
  const rows =
    await sql`select status, count(*)::int as n from generations where deleted_at is null group by status`;
  return new Map(rows.map((row) => [row.status as string, row.n as number]));
}

export interface GenerationTimes {
  queueP50: number;
  queueP95: number;
  finishP50: number;
  finishP95: number;
}

/** Time in queue (created to started) and to finish (created to finished) of the last hour's generations. */
export async function recentGenerationTimes(sql: Sql): Promise<GenerationTimes | undefined> {
  const [row] = await sql`
    select percentile_cont(0.5) within group (order by extract(epoch from started_at - created_at)) as queue_p50,
           percentile_cont(0.95) within group (order by extract(epoch from started_at - created_at)) as queue_p95,
           percentile_cont(0.5) within group (order by extract(epoch from finished_at - created_at)) as finish_p50,
           percentile_cont(0.95) within group (order by extract(epoch from finished_at - created_at)) as finish_p95
    from generations where finished_at > now() - interval '1 hour'`;
  if (row?.queue_p50 == null) return undefined;
  return {
    queueP50: Number(row.queue_p50),
    queueP95: Number(row.queue_p95),
    finishP50: Number(row.finish_p50),
    finishP95: Number(row.finish_p95),
  };
}

export interface GenerationTimeTotals {
  /** Finished generations that had started, and their seconds in the queue (created to started) added up. */
  queue: { count: number; sum: number };
  /** Finished generations, and their seconds from created to finished added up. */
  finish: { count: number; sum: number };
}

/**
 * Since the beginning: every finished generation, hidden ones included, so the figures only grow (as a
 * Prometheus summary's _count and _sum must) when a user's data is deleted.
 */
export async function generationTimeTotals(sql: Sql): Promise<GenerationTimeTotals> {
  const [row] = await sql`
    select count(started_at)::bigint as queue_count,
           coalesce(sum(extract(epoch from started_at - created_at)), 0) as queue_sum,
           count(*)::bigint as finish_count,
           coalesce(sum(extract(epoch from finished_at - created_at)), 0) as finish_sum
    from generations where finished_at is not null`;
  return {
    queue: { count: Number(row?.queue_count ?? 0), sum: Number(row?.queue_sum ?? 0) },
    finish: { count: Number(row?.finish_count ?? 0), sum: Number(row?.finish_sum ?? 0) },
  };
}

/** A counter kept in PostgreSQL (`bumpCounter` in jobs.ts adds to it), by label. */
export async function opsCounter(sql: Sql, name: string): Promise<Map<string, number>> {
  const rows = await sql`select label, value from ops_counters where name = ${name}`;
  return new Map(rows.map((row) => [row.label as string, Number(row.value)]));
}
