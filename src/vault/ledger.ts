import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import { listUserDeletions } from '../generation/user-data.ts';
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

/** Writes the deletions the target does not have yet; idempotent. */
export async function syncLedger(repo: Repository, sql: Sql): Promise<number> {
  const present = new Set(await listDeletions(repo));
  let written = 0;
  for (const deletion of await listUserDeletions(sql)) {
    const record: DeletionRecord = {
      id: deletion.id,
      userId: deletion.userId,
      requestedAt: deletion.requestedAt.toISOString(),
    };
    if (present.has(deletionEntryName(record))) continue;
    await writeDeletion(repo, record);
    written++;
  }
  return written;
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
  const results: Array<{ target: string; written?: number; error?: string }> = [];
  for (const target of resolveTargets(config)) {
    try {
      const repo = await openRepository(target, config.backup.password);
      results.push({ target: target.name, written: await syncLedger(repo, sql) });
    } catch (error) {
      results.push({ target: target.name, error: (error as Error).message });
    }
  }
  return results;
}

/**
 * I3: a deletion is acknowledged only once the ledger of the local target holds it, so a restore onto a new
 * disk right after the answer still re-applies it. The first deletion before any backup creates the local
 * repository. Throws when the ledger cannot be written; a repeat of the request writes it.
 */
export async function syncLocalLedger(config: Config, sql: Sql): Promise<number> {
  const repo = await openRepository(localTarget(config), config.backup.password, { create: true });
  return await syncLedger(repo, sql);
}
