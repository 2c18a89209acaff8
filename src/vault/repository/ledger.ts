import { readAll } from '../../blobstore/index.ts';
import { DECODE_LIMITS, DecodeError } from './codec.ts';
import type { RepositoryHandle } from './handle.ts';
import { readAtMost } from './io.ts';

/**
 * The deletion ledger (format §7.2): one record per user-data deletion under `ledger/deletions/<ms>-<id>`,
 * JSON in the snapshot encoding (encrypted when the repository is). `<ms>` is the deletion time zero-padded
 * to 15 digits, so a listing is in time order and a name says when. Copied with the snapshots, never pruned.
 */
const LEDGER_PREFIX = 'ledger/';
const DELETIONS_PREFIX = `${LEDGER_PREFIX}deletions/`;

export interface DeletionRecord {
  id: number;
  userId: string;
  /** ISO time of the deletion. */
  requestedAt: string;
}

const entryKey = (name: string) => `${DELETIONS_PREFIX}${name}`;

/** The name a deletion is recorded under: `<ms>-<id>`. */
export function deletionEntryName(record: DeletionRecord): string {
  return `${String(Date.parse(record.requestedAt)).padStart(15, '0')}-${record.id}`;
}

/** Records a deletion (under `deletionEntryName(record)`); writing one again only rewrites the same record. */
export async function writeDeletion(repo: RepositoryHandle, record: DeletionRecord): Promise<void> {
  const key = entryKey(deletionEntryName(record));
  const bytes = await repo.encodeRecord(key, Buffer.from(JSON.stringify(record)));
  await repo.store.put(key, bytes, { size: bytes.length });
}

/** The names of the recorded deletions; with `after` (ISO time), only those made later than it. */
export async function listDeletions(
  repo: RepositoryHandle,
  options: { after?: string } = {},
): Promise<string[]> {
  const afterMs = options.after === undefined ? undefined : Date.parse(options.after);
  const names: string[] = [];
  for await (const info of repo.store.list(DELETIONS_PREFIX)) {
    const name = info.key.slice(DELETIONS_PREFIX.length);
    if (afterMs !== undefined && !(Number(name.split('-')[0]) > afterMs)) continue;
    names.push(name);
  }
  return names;
}

/** One deletion record, authenticated and under its own name; throws when it is damaged or not authentic. */
export async function readDeletion(repo: RepositoryHandle, name: string): Promise<DeletionRecord> {
  const key = entryKey(name);
  const stored = await readAtMost(await repo.store.get(key), DECODE_LIMITS.small);
  if (!stored) throw new DecodeError('larger than any deletion record');
  const plaintext = await repo.decodeRecord(key, stored, DECODE_LIMITS.small);
  const record = JSON.parse(plaintext.toString('utf8')) as DeletionRecord;
  // An authentic record moved to another name (another time) would re-apply a deletion out of order.
  if (deletionEntryName(record) !== name)
    throw new Error(`${key} holds the deletion ${deletionEntryName(record)}`);
  return record;
}

/** Deletions made after `since` (ISO time); records that do not read are named by key, not skipped silently. */
export async function readDeletionsAfter(
  repo: RepositoryHandle,
  since: string,
): Promise<{ records: DeletionRecord[]; unreadable: string[] }> {
  const records: DeletionRecord[] = [];
  const unreadable: string[] = [];
  for (const name of await listDeletions(repo, { after: since })) {
    try {
      records.push(await readDeletion(repo, name));
    } catch {
      unreadable.push(entryKey(name));
    }
  }
  return { records, unreadable };
}

/** Copies the ledger entries `to` lacks as stored bytes (the repositories share keys). */
export async function copyLedger(from: RepositoryHandle, to: RepositoryHandle): Promise<void> {
  for await (const info of from.store.list(LEDGER_PREFIX)) {
    if (await to.store.head(info.key)) continue;
    const bytes = await readAll(await from.store.get(info.key));
    await to.store.put(info.key, bytes, { size: bytes.length });
  }
}
