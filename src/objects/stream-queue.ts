import type { Sql } from '../db/connection.ts';

/**
 * The durable queue of objects on their way to the backup targets (continuous protection, I11). `store.ts`
 * adds an entry in the same statement as each index row; the streamer (vault/stream/) takes entries per
 * target, and an entry goes once every configured target holds its object. Notifications on this channel
 * arrive when entries commit.
 */
export const OBJECT_STREAM_CHANNEL = 'object_stream';

export interface QueuedObject {
  id: number;
  key: string;
  enqueuedAt: Date;
}

export interface TargetBacklog {
  target: string;
  /** The database's clock when this was read. */
  now: Date;
  /** Every object row committed at or before this time is held by the target; undefined: not known yet. */
  recoverableUntil: Date | undefined;
  /** Entries the target does not hold yet. */
  pending: number;
  /** What holds `recoverableUntil` before `now`: the oldest entry not held, or an open writing transaction. */
  heldBy?: string;
}

/**
 * Records the targets the queue serves. A target seen for the first time gets every live object queued for
 * it, dated by the row's creation, so its watermark starts honest; the names of the targets added.
 */
export async function registerStreamTargets(sql: Sql, targets: string[]): Promise<string[]> {
  return await sql.begin(async (tx) => {
    const rows = await tx<{ target: string }[]>`
      insert into object_stream_targets (target) select unnest(${targets}::text[])
      on conflict (target) do nothing returning target`;
    const added = rows.map((row) => row.target);
    if (added.length === 0) return added;
    const others = targets.filter((target) => !added.includes(target));
    // Objects whose entry is still queued for every new target are covered already.
    await tx`
      insert into object_stream_queue (key, enqueued_at, done)
      select o.key, o.created_at, ${others}::text[] from objects o
      where o.deleted_at is null and not exists (
        select 1 from object_stream_queue q
        where q.key = o.key and not (q.done && ${added}::text[]))`;
    return added;
  });
}

/** The oldest entries `target` does not hold yet. */
export async function pendingObjects(sql: Sql, target: string, limit: number): Promise<QueuedObject[]> {
  const rows = await sql`
    select id, key, enqueued_at from object_stream_queue
    where not (${target} = any(done)) order by id limit ${limit}`;
  return rows.map((row) => ({
    id: Number(row.id),
    key: row.key as string,
    enqueuedAt: row.enqueued_at as Date,
  }));
}

/** Notes that `target` holds these entries' objects; entries every target holds are removed. */
export async function markObjectsStreamed(
  sql: Sql,
  target: string,
  ids: number[],
  targets: string[],
): Promise<void> {
  if (ids.length === 0) return;
  await sql`
    update object_stream_queue set done = array_append(done, ${target}::text)
    where id = any(${ids}::bigint[]) and not (${target} = any(done))`;
  await sql`delete from object_stream_queue where id = any(${ids}::bigint[]) and done @> ${targets}::text[]`;
}

/**
 * Entries for `keys` whose object is deleted (or has no row) are settled for `target`: there is nothing left to
 * hold, and left pending they would hold the watermark back for ever (a restore re-applies a user's deletion
 * and puts back only live objects, so the queue it restores can name bytes no store has). Returns how many.
 */
export async function settleDeletedEntries(
  sql: Sql,
  target: string,
  keys: string[],
  targets: string[],
): Promise<number> {
  if (keys.length === 0) return 0;
  const settled = await sql`
    update object_stream_queue q set done = array_append(q.done, ${target}::text)
    where q.key = any(${keys}::text[]) and not (${target} = any(q.done))
      and not exists (select 1 from objects o where o.key = q.key and o.deleted_at is null)
    returning q.id`;
  await sql`delete from object_stream_queue where key = any(${keys}::text[]) and done @> ${targets}::text[]`;
  return settled.length;
}

/** The entries queued for `keys` that `target` does not hold yet (an upload waiting in sync mode). */
export async function pendingObjectsByKey(sql: Sql, target: string, keys: string[]): Promise<number[]> {
  const rows = await sql`
    select id from object_stream_queue where key = any(${keys}::text[]) and not (${target} = any(done))`;
  return rows.map((row) => Number(row.id));
}

/**
 * Per target, the time up to which every committed object row is held: min(now, oldest entry not held − 1 ms,
 * oldest writing transaction still open − 1 ms), all on the database's clock, and what holds it there.
 * `held` counts entries as held that the caller has just stored but not marked yet.
 *
 * Why three reads, in this order: a transaction's commit is dated before it becomes visible, so a snapshot can
 * miss an entry whose commit is already dated. The clock is read first; then the open writing transactions
 * (one still committing is among them); then the queue, whose snapshot sees every transaction that had
 * finished by then. An entry's commit comes after its insert, and its insert after its transaction began.
 */
export async function streamWatermarks(
  sql: Sql,
  targets: string[],
  held: { target: string; ids: number[] } = { target: '', ids: [] },
): Promise<TargetBacklog[]> {
  const [clock] = await sql<{ now: Date }[]>`select clock_timestamp() as now`;
  const [running] = await sql<{ since: Date; pid: number; application: string }[]>`
    select xact_start as since, pid, application_name as application from pg_stat_activity
    where datname = current_database() and backend_xid is not null and pid <> pg_backend_pid()
    order by xact_start limit 1`;
  const rows = await sql`
    select t.target, r.target is not null as registered, min(q.enqueued_at) as oldest, count(q.id)::int as pending,
      (array_agg(q.key order by q.enqueued_at))[1] as oldest_key
    from unnest(${targets}::text[]) as t(target)
    left join object_stream_targets r on r.target = t.target
    left join object_stream_queue q on not (t.target = any(q.done))
      and not (t.target = ${held.target} and q.id = any(${held.ids}::bigint[]))
    group by t.target, r.target`;
  const now = clock!.now;
  const transactionLimit = running?.since ? running.since.getTime() - 1 : Infinity;
  return targets.map((target) => {
    const row = rows.find((r) => r.target === target)!;
    const queueLimit = row.oldest ? (row.oldest as Date).getTime() - 1 : Infinity;
    const until = Math.min(now.getTime(), transactionLimit, queueLimit);
    let heldBy: string | undefined;
    if (until === queueLimit)
      heldBy = `the object ${row.oldest_key as string}, queued at ${(row.oldest as Date).toISOString()}, is not on this target yet`;
    else if (until === transactionLimit)
      heldBy = `a writing transaction has been open since ${running!.since.toISOString()} (PostgreSQL pid ${running!.pid}${running!.application ? `, ${running!.application}` : ''})`;
    return {
      target,
      now,
      recoverableUntil: row.registered ? new Date(until) : undefined,
      pending: row.pending as number,
      ...(heldBy ? { heldBy } : {}),
    };
  });
}

/** Records the streamer's failure on a target (an error message), or its recovery (undefined). */
export async function recordStreamTargetHealth(
  sql: Sql,
  target: string,
  error: string | undefined,
): Promise<void> {
  await sql`
    update object_stream_targets set last_error = ${error ?? null},
      failing_since = case when ${error ?? null}::text is null then null else coalesce(failing_since, now()) end
    where target = ${target}`;
}

/** The targets the streamer is failing on, with its last error. */
export async function streamTargetErrors(sql: Sql): Promise<Map<string, string>> {
  const rows = await sql`select target, last_error from object_stream_targets where last_error is not null`;
  return new Map(rows.map((row) => [row.target as string, row.last_error as string]));
}

/** The targets the queue serves (registered by a streamer); none before migration 0007. */
export async function streamTargetNames(sql: Sql): Promise<string[]> {
  const [present] = await sql`select to_regclass('object_stream_targets') is not null as ok`;
  if (!present?.ok) return [];
  const rows = await sql`select target from object_stream_targets order by target`;
  return rows.map((row) => row.target as string);
}
