import type { Sql } from '../../db/connection.ts';
import { WAL_RECEIVER_NAME } from './receiver.ts';
import type { TargetProgress } from './shipper.ts';

/** The stream's state as `trendgen protect` last wrote it (table `wal_stream_status`, owned here). */
export interface WalStreamStatus {
  target: string;
  timeline: number | null;
  shippedLsn: string | null;
  recoverableUntil: Date | null;
  /** Seconds between the newest write and the newest moment this target can restore. */
  lagSeconds: number | null;
  /** `streaming`, `starting`, `failed`, `stopped`, or `refused` (the server does not allow replication). */
  receiver: string;
  error: string | null;
  updatedAt: Date;
}

/** A status older than this means `protect` is not running: the lag then grows with the clock. */
export const STATUS_STALE_SECONDS = 15;

export async function writeWalStatus(
  sql: Sql,
  receiver: string,
  progress: TargetProgress[],
  error?: string,
): Promise<void> {
  for (const p of progress) {
    const problem = p.error ?? error ?? null;
    await sql`
      insert into wal_stream_status (target, timeline, shipped_lsn, recoverable_until, lag_seconds, receiver, error, updated_at)
      values (${p.target}, ${p.timeline ?? null}, ${p.shippedLsn === undefined ? null : lsnText(p.shippedLsn)},
        ${p.recoverableUntil ?? null}, ${p.lagSeconds ?? null}, ${receiver}, ${problem}, clock_timestamp())
      on conflict (target) do update set timeline = excluded.timeline, shipped_lsn = excluded.shipped_lsn,
        recoverable_until = excluded.recoverable_until, lag_seconds = excluded.lag_seconds,
        receiver = excluded.receiver, error = excluded.error, updated_at = excluded.updated_at`;
  }
}

function lsnText(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Every target's stream status; a stale row's lag is counted up to now, since nothing ships meanwhile. */
export async function readWalStatus(sql: Sql): Promise<WalStreamStatus[]> {
  const rows = await sql<
    {
      target: string;
      timeline: number | null;
      shipped_lsn: string | null;
      recoverable_until: Date | null;
      lag_seconds: number | null;
      receiver: string;
      error: string | null;
      updated_at: Date;
      age: number;
      behind: number | null;
    }[]
  >`select target, timeline, shipped_lsn::text, recoverable_until, lag_seconds, receiver, error, updated_at,
      extract(epoch from clock_timestamp() - updated_at)::float8 as age,
      extract(epoch from clock_timestamp() - recoverable_until)::float8 as behind
    from wal_stream_status order by target`;
  return rows.map((row) => {
    const stale = row.age > STATUS_STALE_SECONDS;
    return {
      target: row.target,
      timeline: row.timeline,
      shippedLsn: row.shipped_lsn,
      recoverableUntil: row.recoverable_until,
      // How old the newest recoverable moment is now, on the database's clock (the shipper's own figure is
      // taken at the start of its cycle and reads 0 between cycles).
      lagSeconds: row.behind === null ? null : Math.max(0, row.behind),
      receiver: stale ? 'stopped' : row.receiver,
      error: stale
        ? `trendgen protect has not reported for ${Math.round(row.age)} s: is it running?`
        : row.error,
      updatedAt: row.updated_at,
    };
  });
}

/**
 * In synchronous mode a commit waits for the receiver: when it is not connected, writes hang. Says so in one
 * sentence (for /readyz, doctor and alerts), or undefined when commits can complete.
 */
export async function synchronousStall(sql: Sql): Promise<string | undefined> {
  const [row] = await sql<{ names: string; connected: boolean }[]>`
    select current_setting('synchronous_standby_names') as names,
      exists (select 1 from pg_stat_replication where application_name = ${WAL_RECEIVER_NAME}
        and state = 'streaming') as connected`;
  if (!row?.names.includes(WAL_RECEIVER_NAME) || row.connected) return undefined;
  return `BACKUP_SYNC is on and the WAL receiver is not connected, so every commit waits: start trendgen protect (or trendgen up), or set BACKUP_SYNC=off to accept a recovery point of about a second.`;
}
