import type { Config } from '../../config/config.ts';
import type { Sql } from '../../db/connection.ts';
import { type Protector, streamsWal, whoProtects } from '../protected-by.ts';
import { streamedTargetsStatus } from '../stream/objects-status.ts';
import { targetNames } from '../targets.ts';
import { WAL_RECEIVER_NAME } from './receiver.ts';
import { readWalStatus, synchronousStall } from './status.ts';

export interface SourceTargetStatus {
  source: 'postgres' | 'objects';
  target: string;
  recoverableUntil: string | null;
  lagSeconds: number | null;
  state: string;
  error: string | null;
  /** Objects: what holds the recoverable point back, when it lags. */
  heldBy?: string;
}

export interface ProtectionStatus {
  continuous: boolean;
  mode: 'sync' | 'async' | 'off';
  pitrWindow: string;
  receiver: { state: string; slot: { retainedBytes: number | null; walStatus: string | null } | null };
  /** Why commits are waiting in synchronous mode, when they are. */
  stall: string | null;
  sources: SourceTargetStatus[];
  /** Which system keeps each kind of data recoverable (the database may be CloudNativePG's or a provider's). */
  protectedBy: Protector[];
}

/** What `trendgen status`, `GET /api/v1/backups`, metrics and doctor report about continuous protection. */
export async function protectionStatus(sql: Sql, config: Config): Promise<ProtectionStatus> {
  // A target taken out of the settings keeps its rows in the database; it is no longer reported.
  const configured = new Set(targetNames(config));
  const rows = (await readWalStatus(sql)).filter((row) => configured.has(row.target));
  const [slot] = await sql<{ retained: string | null; wal_status: string | null }[]>`
    select pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text as retained, wal_status
    from pg_replication_slots where slot_name = ${WAL_RECEIVER_NAME}`;
  const walStreamed = streamsWal(config);
  const receiverState = rows[0]?.receiver ?? (walStreamed ? 'stopped' : 'off');
  const sources: SourceTargetStatus[] = [
    ...rows.map((row) => ({
      source: 'postgres' as const,
      target: row.target,
      recoverableUntil: row.recoverableUntil?.toISOString() ?? null,
      lagSeconds: row.lagSeconds === null ? null : Math.round(row.lagSeconds * 1000) / 1000,
      state: row.receiver,
      error: row.error,
    })),
    ...(await streamedTargetsStatus(sql))
      .filter((row) => configured.has(row.target))
      .map((row) => ({
        source: 'objects' as const,
        target: row.target,
        recoverableUntil: row.recoverableUntil?.toISOString() ?? null,
        lagSeconds: row.lagSeconds === undefined ? null : Math.round(row.lagSeconds * 1000) / 1000,
        state: row.error ? 'failing' : 'streaming',
        error: row.error ?? null,
        ...(row.heldBy ? { heldBy: row.heldBy } : {}),
      })),
  ];
  return {
    continuous: config.backup.continuous,
    mode: !walStreamed ? 'off' : config.backup.sync ? 'sync' : 'async',
    pitrWindow: config.source.BACKUP_PITR_WINDOW ?? '7d',
    receiver: {
      state: receiverState,
      slot: slot
        ? { retainedBytes: slot.retained === null ? null : Number(slot.retained), walStatus: slot.wal_status }
        : null,
    },
    stall: (await synchronousStall(sql)) ?? null,
    sources,
    protectedBy: whoProtects(config, sources),
  };
}
