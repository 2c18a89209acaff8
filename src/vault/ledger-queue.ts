import type { Sql } from '../db/connection.ts';
import { listUserDeletions } from '../generation/user-data.ts';

/**
 * The durable queue behind the offsite deletion ledgers (I3): `user_deletions` holds every deletion, and
 * `deletion_ledger_writes` which target's ledger has it. What a target lacks is owed to it, whatever happened
 * to the process that answered the deletion; the scheduler's ledger job retries until it is written. The
 * only module whose SQL names `deletion_ledger_writes` and `deletion_ledger_attempts`.
 */

export interface LedgerDebt {
  target: string;
  /** Deletions not yet in the target's ledger. */
  pending: number;
  /** Seconds since the oldest of them was acknowledged; 0 when none is pending. */
  lagSeconds: number;
  lastAttemptAt: Date | undefined;
  lastError: string | undefined;
}

/** Records that these deletions are in the target's ledger. */
export async function recordLedgerWrites(sql: Sql, target: string, deletionIds: number[]): Promise<void> {
  if (deletionIds.length === 0) return;
  await sql`
    insert into deletion_ledger_writes (deletion_id, target)
    select id, ${target} from unnest(${deletionIds}::bigint[]) as id
    on conflict do nothing`;
}

/** Records an attempt on a target: its error, or none when the ledger was brought up to date. */
export async function recordLedgerAttempt(sql: Sql, target: string, error?: string): Promise<void> {
  await sql`
    insert into deletion_ledger_attempts (target, attempted_at, error) values (${target}, now(), ${error ?? null})
    on conflict (target) do update set attempted_at = excluded.attempted_at, error = excluded.error`;
}

/** What each target is still owed, and since when. */
export async function ledgerDebts(sql: Sql, targets: string[], now = new Date()): Promise<LedgerDebt[]> {
  const deletions = await listUserDeletions(sql);
  const written = await sql<{ target: string; id: number }[]>`
    select target, deletion_id as id from deletion_ledger_writes`;
  const attempts = await sql<{ target: string; at: Date; error: string | null }[]>`
    select target, attempted_at as at, error from deletion_ledger_attempts`;
  return targets.map((target) => {
    const done = new Set(written.filter((w) => w.target === target).map((w) => Number(w.id)));
    const owed = deletions.filter((d) => !done.has(d.id));
    const oldest = Math.min(...owed.map((d) => d.requestedAt.getTime()));
    const attempt = attempts.find((a) => a.target === target);
    return {
      target,
      pending: owed.length,
      lagSeconds: owed.length ? Math.max(0, (now.getTime() - oldest) / 1000) : 0,
      lastAttemptAt: attempt?.at,
      lastError: attempt?.error ?? undefined,
    };
  });
}
