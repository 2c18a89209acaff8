import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import { listUserDeletions } from '../generation/user-data.ts';
import { ledgerEntryNames, type Repository, readLedgerEntry, writeLedgerEntry } from './repository/index.ts';
import { openRepository, resolveTargets } from './targets.ts';

/**
 * The deletion ledger: every user-data deletion, kept on each backup target beside the snapshots, so that
 * restoring any older snapshot — even onto a new machine after the old disk is gone — re-applies the
 * deletions that came after it (I3). Entries are named `<ms>-<id>`, so a name says when.
 */
const BOOK = 'deletions';

export interface DeletionRecord {
  id: number;
  userId: string;
  requestedAt: string;
}

function entryName(record: DeletionRecord): string {
  return `${String(Date.parse(record.requestedAt)).padStart(15, '0')}-${record.id}`;
}

/** Writes the deletions the target does not have yet; idempotent. */
export async function syncLedger(repo: Repository, sql: Sql): Promise<number> {
  const present = new Set(await ledgerEntryNames(repo, BOOK));
  let written = 0;
  for (const deletion of await listUserDeletions(sql)) {
    const record: DeletionRecord = {
      id: deletion.id,
      userId: deletion.userId,
      requestedAt: deletion.requestedAt.toISOString(),
    };
    const name = entryName(record);
    if (present.has(name)) continue;
    await writeLedgerEntry(repo, BOOK, name, Buffer.from(JSON.stringify(record)));
    written++;
  }
  return written;
}

/** Deletions recorded after `since` (ISO time); unreadable records are reported, not skipped silently. */
export async function readLedger(
  repo: Repository,
  since: string,
): Promise<{ records: DeletionRecord[]; unreadable: string[] }> {
  const records: DeletionRecord[] = [];
  const unreadable: string[] = [];
  const sinceMs = Date.parse(since);
  for (const name of await ledgerEntryNames(repo, BOOK)) {
    const at = Number(name.split('-')[0]);
    if (!(at > sinceMs)) continue;
    try {
      records.push(JSON.parse((await readLedgerEntry(repo, BOOK, name)).toString('utf8')) as DeletionRecord);
    } catch {
      unreadable.push(`ledger/${BOOK}/${name}`);
    }
  }
  return { records, unreadable };
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
