import { readAll } from '../../blobstore/index.ts';
import { DECODE_LIMITS } from './codec.ts';
import { isId } from './format.ts';
import type { RepositoryHandle } from './handle.ts';

/**
 * Continuous protection's records (format §12): the PostgreSQL write-ahead log and the physical base backups
 * it replays from. Each record is JSON in the snapshot record encoding (sealed when the repository is
 * encrypted, tagged under the repository key when not) and names a tree whose one file entry holds the bytes, so check, prune and the restorer
 * treat them like any snapshot's files.
 *
 * - `wal/<segment>`: a completed 16 MiB segment;
 * - `wal/<segment>.partial`: the segment being written, up to `endLsn`, rewritten as the stream advances and
 *   removed once the completed segment is recorded;
 * - `wal/<timeline>.history`: a timeline history file;
 * - `base/<time>-<id>`: a base backup (a tar of the data directory without its WAL).
 */
export const WAL_PREFIX = 'wal/';
export const BASE_PREFIX = 'base/';

export type WalRecordKind = 'segment' | 'partial' | 'history';

export interface WalRecord {
  kind: WalRecordKind;
  /** The file's name as PostgreSQL knows it (`000000010000000000000003`, `00000002.history`). */
  name: string;
  timeline: number;
  /** The tree whose one entry, named `name`, holds the bytes. */
  tree: string;
  size: number;
  /** The WAL this record makes recoverable ends here (for a partial segment, where its valid bytes end). */
  endLsn?: string;
  /** The newest moment (the database's clock) before which every committed change is in this archive. */
  coversUntil?: string;
  shippedAt: string;
}

export interface BaseBackupRecord {
  id: string;
  /** When pg_basebackup finished: the backup is consistent once WAL is replayed up to `endLsn`. */
  time: string;
  startedAt: string;
  timeline: number;
  startLsn: string;
  endLsn: string;
  /** The tree whose one entry, `base.tar`, is the data directory. */
  tree: string;
  size: number;
  serverVersionNum: number;
  systemIdentifier: string;
  /**
   * The database marked every object row made live in the WAL when this backup began (migration 0019), so the
   * WAL after it names the objects each commit made live; absent in older records.
   */
  objectMarkers?: boolean;
}

export function walRecordKey(kind: WalRecordKind, name: string): string {
  return `${WAL_PREFIX}${name}${kind === 'partial' ? '.partial' : ''}`;
}

export function baseRecordKey(record: Pick<BaseBackupRecord, 'id' | 'time'>): string {
  return `${BASE_PREFIX}${String(Date.parse(record.time)).padStart(15, '0')}-${record.id}`;
}

async function putRecord(repo: RepositoryHandle, key: string, record: object): Promise<void> {
  // A record names blobs: every one of them is durable and findable first (I6).
  await repo.flushBlobs();
  const bytes = await repo.encodeRecord(key, Buffer.from(JSON.stringify(record)), DECODE_LIMITS.small);
  await repo.store.put(key, bytes, { size: bytes.length });
}

async function getRecord<T>(repo: RepositoryHandle, key: string, check: (value: T) => boolean): Promise<T> {
  const plaintext = await repo.decodeRecord(
    key,
    await readAll(await repo.store.get(key)),
    DECODE_LIMITS.small,
  );
  const value = JSON.parse(plaintext.toString('utf8')) as T;
  if (!check(value)) throw new Error(`The record ${key} in ${repo.location} is malformed.`);
  return value;
}

/** Written after every blob of its tree (I6): one atomic put; a partial record replaces the previous one. */
export function writeWalRecord(repo: RepositoryHandle, record: WalRecord): Promise<void> {
  return putRecord(repo, walRecordKey(record.kind, record.name), record);
}

export function writeBaseRecord(repo: RepositoryHandle, record: BaseBackupRecord): Promise<void> {
  return putRecord(repo, baseRecordKey(record), record);
}

export async function deleteWalRecord(
  repo: RepositoryHandle,
  kind: WalRecordKind,
  name: string,
): Promise<void> {
  await repo.store.delete(walRecordKey(kind, name));
}

export async function deleteBaseRecord(repo: RepositoryHandle, record: BaseBackupRecord): Promise<void> {
  await repo.store.delete(baseRecordKey(record));
}

/** The keys under `wal/`, by kind and name (no record is read). */
export async function listWalKeys(
  repo: RepositoryHandle,
): Promise<Array<{ kind: WalRecordKind; name: string; key: string }>> {
  const out: Array<{ kind: WalRecordKind; name: string; key: string }> = [];
  for await (const info of repo.store.list(WAL_PREFIX)) {
    const rest = info.key.slice(WAL_PREFIX.length);
    if (/^[0-9A-F]{24}$/.test(rest)) out.push({ kind: 'segment', name: rest, key: info.key });
    else if (/^[0-9A-F]{24}\.partial$/.test(rest))
      out.push({ kind: 'partial', name: rest.slice(0, 24), key: info.key });
    else if (/^[0-9A-F]{8}\.history$/.test(rest)) out.push({ kind: 'history', name: rest, key: info.key });
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

const isWalRecord = (value: WalRecord) =>
  typeof value === 'object' &&
  value !== null &&
  ['segment', 'partial', 'history'].includes(value.kind) &&
  typeof value.name === 'string' &&
  isId(value.tree) &&
  Number.isInteger(value.size);

export function readWalRecord(repo: RepositoryHandle, kind: WalRecordKind, name: string): Promise<WalRecord> {
  const key = walRecordKey(kind, name);
  return getRecord<WalRecord>(
    repo,
    key,
    (value) => isWalRecord(value) && value.name === name && value.kind === kind,
  );
}

const isBaseRecord = (value: BaseBackupRecord) =>
  typeof value === 'object' &&
  value !== null &&
  isId(value.tree) &&
  typeof value.startLsn === 'string' &&
  typeof value.endLsn === 'string' &&
  Number.isInteger(value.timeline) &&
  !Number.isNaN(Date.parse(value.time));

/** Every base backup record that reads, oldest first; damaged ones are named, not skipped silently. */
export async function listBaseBackups(
  repo: RepositoryHandle,
): Promise<{ backups: BaseBackupRecord[]; unreadable: string[] }> {
  const backups: BaseBackupRecord[] = [];
  const unreadable: string[] = [];
  const keys: string[] = [];
  for await (const info of repo.store.list(BASE_PREFIX)) keys.push(info.key);
  for (const key of keys.sort()) {
    try {
      backups.push(await getRecord<BaseBackupRecord>(repo, key, isBaseRecord));
    } catch {
      unreadable.push(key);
    }
  }
  return { backups, unreadable };
}

/**
 * The root trees continuous protection's records hold on to: check walks them and prune keeps their blobs.
 * Records that do not read are named: prune must then stop, since their blobs cannot be told from garbage.
 */
export async function continuousRoots(
  repo: RepositoryHandle,
): Promise<{ roots: string[]; unreadable: string[] }> {
  const roots: string[] = [];
  const unreadable: string[] = [];
  for (const { kind, name, key } of await listWalKeys(repo)) {
    try {
      roots.push((await readWalRecord(repo, kind, name)).tree);
    } catch {
      // A live stream replaces the segment in progress and removes it once complete: a record gone since the
      // listing, or rewritten while it was read, is read again before it is called unreadable.
      if (!(await repo.store.head(key))) continue;
      try {
        roots.push((await readWalRecord(repo, kind, name)).tree);
      } catch {
        unreadable.push(key);
      }
    }
  }
  const bases = await listBaseBackups(repo);
  for (const backup of bases.backups) roots.push(backup.tree);
  return { roots, unreadable: [...unreadable, ...bases.unreadable] };
}

/** Copies blobs `to` lacks as stored bytes (the repositories share keys), for records copied to another target. */
export async function copyBlobsTo(
  from: RepositoryHandle,
  to: RepositoryHandle,
  ids: string[],
): Promise<number> {
  const have = await to.index.load();
  let bytesCopied = 0;
  for (const id of ids) {
    if (have.has(id)) continue;
    const bytes = await from.readStored(id);
    if (await to.putStored(id, bytes)) bytesCopied += bytes.length;
  }
  // The records that name these blobs are written next.
  await to.flushBlobs();
  return bytesCopied;
}
