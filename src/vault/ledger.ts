import { readAll } from '../blobstore/blobstore.ts';
import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import type { Repository } from './repository/index.ts';
import { openRepository, resolveTargets } from './targets.ts';

/**
 * The deletion ledger: every user-data deletion, kept on each backup target beside the snapshots, so that
 * restoring any older snapshot — even onto a new machine after the old disk is gone — re-applies the
 * deletions that came after it (I3). Records use the snapshot encoding (encrypted when the repository is).
 */
const LEDGER_PREFIX = 'ledger/deletions/';

export interface DeletionRecord {
  id: number;
  userId: string;
  requestedAt: string;
}

function recordKey(record: DeletionRecord): string {
  return `${LEDGER_PREFIX}${String(Date.parse(record.requestedAt)).padStart(15, '0')}-${record.id}`;
}

/** Writes the deletions the target does not have yet; idempotent. */
export async function syncLedger(repo: Repository, sql: Sql): Promise<number> {
  const present = new Set<string>();
  for await (const info of repo.store.list(LEDGER_PREFIX)) present.add(info.key);
  const rows = await sql`select id, user_id, requested_at from user_deletions order by id`;
  let written = 0;
  for (const row of rows) {
    const record: DeletionRecord = {
      id: Number(row.id),
      userId: row.user_id as string,
      requestedAt: (row.requested_at as Date).toISOString(),
    };
    const key = recordKey(record);
    if (present.has(key)) continue;
    const bytes = await repo.codec.encode('snapshot', Buffer.from(JSON.stringify(record)));
    await repo.store.put(key, bytes, { size: bytes.length });
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
  for await (const info of repo.store.list(LEDGER_PREFIX)) {
    const at = Number(info.key.slice(LEDGER_PREFIX.length).split('-')[0]);
    if (!(at > sinceMs)) continue;
    try {
      const { plaintext } = await repo.codec.decode(await readAll(await repo.store.get(info.key)));
      records.push(JSON.parse(plaintext.toString('utf8')) as DeletionRecord);
    } catch {
      unreadable.push(info.key);
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
