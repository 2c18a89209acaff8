import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import { listUserDeletions } from '../generation/user-data.ts';
import { snapshotIdsTaken } from './catalog.ts';
import { type LedgerDebt, ledgerDebts, recordLedgerAttempt, recordLedgerWrites } from './ledger-queue.ts';
import {
  type DeletionRecord,
  deletionEntryName,
  listDeletions,
  type Repository,
  readDeletionsAfter,
  writeDeletion,
} from './repository/index.ts';
import { localTarget, openRepository, resolveTargets } from './targets.ts';

/**
 * The deletion ledger: every user-data deletion, kept on each backup target beside the snapshots, so that
 * restoring any older snapshot — even onto a new machine after the old disk is gone — re-applies the
 * deletions that came after it (I3). The repository stores the records (repository/ledger.ts); this file
 * keeps them in step with PostgreSQL's `user_deletions`.
 */

export type { DeletionRecord };

/**
 * Writes the deletions the target does not have yet; idempotent. With `target`, records in PostgreSQL that the
 * target's ledger holds them (ledger-queue.ts), so what is still owed to it, and since when, is known.
 */
export async function syncLedger(repo: Repository, sql: Sql, target?: string): Promise<number> {
  const present = new Set(await listDeletions(repo));
  let written = 0;
  const held: number[] = [];
  for (const deletion of await listUserDeletions(sql)) {
    const record: DeletionRecord = {
      id: deletion.id,
      userId: deletion.userId,
      requestedAt: deletion.requestedAt.toISOString(),
    };
    if (!present.has(deletionEntryName(record))) {
      await writeDeletion(repo, record);
      written++;
    }
    held.push(deletion.id);
  }
  if (target) await recordLedgerWrites(sql, target, held);
  return written;
}

/**
 * The retry of the durable queue: every target still owed a deletion gets its ledger brought up to date, so
 * an offsite ledger follows within a minute of the target being reachable, not only at the next backup. A
 * target without a repository yet is owed until its first backup creates one; each attempt is recorded.
 */
export async function followLedgers(config: Config, sql: Sql): Promise<LedgerDebt[]> {
  const targets = resolveTargets(config);
  const debts = await ledgerDebts(
    sql,
    targets.map((t) => t.name),
  );
  // Each target on its own: an unreachable region delays no other target's ledger.
  await Promise.all(
    debts
      .filter((d) => d.pending > 0)
      .map(async (debt) => {
        try {
          const repo = await openRepository(targets.find((t) => t.name === debt.target)!, config);
          await authenticateRepository(repo, sql);
          await syncLedger(repo, sql, debt.target);
          await recordLedgerAttempt(sql, debt.target);
        } catch (error) {
          await recordLedgerAttempt(sql, debt.target, (error as Error).message);
        }
      }),
  );
  return await ledgerDebts(
    sql,
    targets.map((t) => t.name),
  );
}

/**
 * Gives a format-1 unencrypted repository its key (repository/records.ts): the snapshots the catalog records
 * as this service's backups and every deletion PostgreSQL knows are rewritten authenticated; anything else
 * written before stays unverified. Nothing to do for other repositories.
 */
export async function authenticateRepository(repo: Repository, sql: Sql | undefined) {
  if (!repo.needsUpgrade) return undefined;
  return await repo.upgrade({
    snapshots: new Set(sql ? await snapshotIdsTaken(sql) : []),
    rewriteLedger: async () => {
      for (const deletion of sql ? await listUserDeletions(sql) : []) {
        await writeDeletion(repo, {
          id: deletion.id,
          userId: deletion.userId,
          requestedAt: deletion.requestedAt.toISOString(),
        });
      }
    },
  });
}

/** Deletions recorded after `since` (ISO time); unreadable records are reported, not skipped silently. */
export async function readLedger(
  repo: Repository,
  since: string,
): Promise<{ records: DeletionRecord[]; unreadable: string[] }> {
  return await readDeletionsAfter(repo, since);
}

/**
 * Writes the ledger to every target whose repository exists, right after a deletion, so the record does not
 * wait for the next backup. Best effort: the next backup syncs whatever this could not write.
 */
export async function syncLedgerEverywhere(
  config: Config,
  sql: Sql,
): Promise<Array<{ target: string; written?: number; error?: string }>> {
  return await Promise.all(
    resolveTargets(config).map(async (target) => {
      try {
        const repo = await openRepository(target, config);
        await authenticateRepository(repo, sql);
        return { target: target.name, written: await syncLedger(repo, sql, target.name) };
      } catch (error) {
        return { target: target.name, error: (error as Error).message };
      }
    }),
  );
}

/**
 * I3: a deletion is acknowledged only once the ledger of the local target holds it, so a restore onto a new
 * disk right after the answer still re-applies it. The first deletion before any backup creates the local
 * repository. Throws when the ledger cannot be written; a repeat of the request writes it.
 */
export async function syncLocalLedger(config: Config, sql: Sql): Promise<number> {
  const repo = await openRepository(localTarget(config), config, { create: true });
  await authenticateRepository(repo, sql);
  return await syncLedger(repo, sql, localTarget(config).name);
}
