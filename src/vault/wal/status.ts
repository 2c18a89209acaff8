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

/**
 * Writes every target's row in one statement, so one transaction and one commit record, and returns that
 * transaction's 32-bit id: the table is unlogged, so the commit record is all it leaves in the WAL, and the
 * shipper leaves such records unshipped (`idle-wal.ts`). Nothing else may ever be written in this transaction.
 */
export async function writeWalStatus(
  sql: Sql,
  receiver: string,
  progress: TargetProgress[],
  error?: string,
): Promise<number | undefined> {
  if (progress.length === 0) return undefined;
  const rows = progress.map((p) => ({
    target: p.target,
    timeline: p.timeline ?? null,
    shipped_lsn: p.shippedLsn === undefined ? null : lsnText(p.shippedLsn),
    recoverable_until: p.recoverableUntil?.toISOString() ?? null,
    lag_seconds: p.lagSeconds ?? null,
    error: p.error ?? error ?? null,
  }));
  const [written] = await sql<{ xid: string }[]>`
    insert into wal_stream_status (target, timeline, shipped_lsn, recoverable_until, lag_seconds, receiver, error, updated_at)
    select r.target, r.timeline, r.shipped_lsn::pg_lsn, r.recoverable_until, r.lag_seconds, ${receiver}, r.error,
      clock_timestamp()
    from jsonb_to_recordset(${sql.json(rows)}) as r(target text, timeline integer, shipped_lsn text,
      recoverable_until timestamptz, lag_seconds double precision, error text)
    on conflict (target) do update set timeline = excluded.timeline, shipped_lsn = excluded.shipped_lsn,
      recoverable_until = excluded.recoverable_until, lag_seconds = excluded.lag_seconds,
      receiver = excluded.receiver, error = excluded.error, updated_at = excluded.updated_at
    returning (pg_current_xact_id()::text::numeric % 4294967296)::text as xid`;
  return written ? Number(written.xid) : undefined;
}

/** Whether the status table is unlogged, as its migration makes it: only then is a status write's WAL idle. */
export async function statusTableUnlogged(sql: Sql): Promise<boolean> {
  const [row] = await sql<{ unlogged: boolean }[]>`
    select relpersistence = 'u' as unlogged from pg_class where oid = 'wal_stream_status'::regclass`;
  return Boolean(row?.unlogged);
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
