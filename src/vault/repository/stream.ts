import { randomBytes } from 'node:crypto';
import { BlobNotFoundError, readAll } from '../../blobstore/index.ts';
import { DECODE_LIMITS } from './codec.ts';
import type { RepositoryHandle } from './handle.ts';

/**
 * Objects streamed between snapshots (format §7.3): each batch the streamer stores is named by a journal
 * record under `stream/objects/journal/<ms>-<random>`, written after the blobs it names; `stream/objects/state`
 * is rewritten (one atomic put) with the newest watermark. Both are JSON in the snapshot encoding (kind 2,
 * encrypted when the repository is), so a restore on a new machine reads them without the database.
 */
const JOURNAL_PREFIX = 'stream/objects/journal/';
const STATE_KEY = 'stream/objects/state';

export interface StreamedObject {
  key: string;
  sha256: string;
  size: number;
  /** The data blobs of its content, in order (the same blobs a snapshot's objects tree names). */
  chunks: string[];
}

export interface ObjectsJournalRecord {
  version: 1;
  /** ISO time the record was written (the streamer's clock; for people). */
  time: string;
  /** ISO time W: every object row committed at or before W is held by this repository (the database's clock). */
  watermark?: string;
  objects: StreamedObject[];
}

export interface ObjectsStreamState {
  version: 1;
  time: string;
  watermark: string;
}

async function putRecord(repo: RepositoryHandle, key: string, value: unknown): Promise<void> {
  // Authenticated like snapshot records: a journal names blobs a restore writes into the object store.
  // The blobs a journal names are durable and findable first (I6).
  await repo.flushBlobs();
  const bytes = await repo.encodeRecord(key, Buffer.from(JSON.stringify(value)), DECODE_LIMITS.snapshot);
  await repo.store.put(key, bytes, { size: bytes.length });
}

async function getRecord<T>(repo: RepositoryHandle, key: string): Promise<T> {
  const plaintext = await repo.decodeRecord(
    key,
    await readAll(await repo.store.get(key)),
    DECODE_LIMITS.snapshot,
  );
  return JSON.parse(plaintext.toString('utf8')) as T;
}

/** Writes a journal record (after every blob it names); its key. */
export async function writeObjectsJournal(
  repo: RepositoryHandle,
  record: ObjectsJournalRecord,
): Promise<string> {
  const name = `${String(Date.parse(record.time)).padStart(15, '0')}-${randomBytes(8).toString('hex')}`;
  await putRecord(repo, `${JOURNAL_PREFIX}${name}`, record);
  return `${JOURNAL_PREFIX}${name}`;
}

/** Every journal record in time order; records that do not read are named by key, never skipped silently. */
export async function readObjectsJournal(
  repo: RepositoryHandle,
): Promise<{ records: ObjectsJournalRecord[]; unreadable: string[] }> {
  const keys: string[] = [];
  for await (const info of repo.store.list(JOURNAL_PREFIX)) keys.push(info.key);
  const records: ObjectsJournalRecord[] = [];
  const unreadable: string[] = [];
  for (const key of keys.sort()) {
    try {
      const record = await getRecord<ObjectsJournalRecord>(repo, key);
      if (record.version !== 1 || !Array.isArray(record.objects)) throw new Error('not a journal record');
      records.push(record);
    } catch {
      unreadable.push(key);
    }
  }
  return { records, unreadable };
}

/** Past this many journal records, all but the newest are merged into one (or a few) records. */
export const JOURNAL_COMPACT_AT = 256;
const JOURNAL_KEEP_NEWEST = 16;
/** Objects per merged record: far below the record size bound (about 250 bytes of JSON each). */
const MERGED_OBJECTS_MAX = 20_000;

/**
 * Merges old journal records into few, so that the record count (each one a read for every restore, check
 * and prune) stays bounded however long the stream runs. The merged records are written before the merged
 * ones are deleted: a crash in between leaves the same objects named twice, which readers take as one. Run
 * under the repository's shared lock (prune, holding the exclusive one, then never sees a half-merged
 * journal); a record that does not read stops the merge and stays as it is, to be reported by check.
 */
export async function compactObjectsJournal(
  repo: RepositoryHandle,
): Promise<{ merged: number; written: number }> {
  const keys: string[] = [];
  for await (const info of repo.store.list(JOURNAL_PREFIX)) keys.push(info.key);
  if (keys.length < JOURNAL_COMPACT_AT) return { merged: 0, written: 0 };
  const old = keys.sort().slice(0, keys.length - JOURNAL_KEEP_NEWEST);
  const objects = new Map<string, StreamedObject>();
  let watermark: number | undefined;
  let time = '';
  for (const key of old) {
    let record: ObjectsJournalRecord;
    try {
      record = await getRecord<ObjectsJournalRecord>(repo, key);
    } catch {
      return { merged: 0, written: 0 };
    }
    if (record.version !== 1 || !Array.isArray(record.objects)) return { merged: 0, written: 0 };
    for (const object of record.objects) objects.set(object.key, object);
    const w = record.watermark ? Date.parse(record.watermark) : Number.NaN;
    if (!Number.isNaN(w) && (watermark === undefined || w > watermark)) watermark = w;
    time = record.time;
  }
  const all = [...objects.values()];
  let written = 0;
  for (let i = 0; i < all.length || i === 0; i += MERGED_OBJECTS_MAX) {
    await writeObjectsJournal(repo, {
      version: 1,
      // The newest merged record's time: merged records sort where their newest part did.
      time,
      ...(watermark !== undefined ? { watermark: new Date(watermark).toISOString() } : {}),
      objects: all.slice(i, i + MERGED_OBJECTS_MAX),
    });
    written++;
    if (all.length === 0) break;
  }
  for (const key of old) await repo.store.delete(key);
  return { merged: old.length, written };
}

export async function writeObjectsStreamState(
  repo: RepositoryHandle,
  state: ObjectsStreamState,
): Promise<void> {
  await putRecord(repo, STATE_KEY, state);
}

/**
 * The current state record; undefined when there is none or it is damaged (the journal then decides). An
 * unreachable target throws: that is not the same as "nothing streamed".
 */
export async function readObjectsStreamState(
  repo: RepositoryHandle,
): Promise<ObjectsStreamState | undefined> {
  let stored: Buffer;
  try {
    stored = await readAll(await repo.store.get(STATE_KEY));
  } catch (error) {
    if (error instanceof BlobNotFoundError) return undefined;
    throw error;
  }
  try {
    const state = JSON.parse(
      (await repo.decodeRecord(STATE_KEY, stored, DECODE_LIMITS.small)).toString('utf8'),
    );
    return state.version === 1 && typeof state.watermark === 'string'
      ? (state as ObjectsStreamState)
      : undefined;
  } catch {
    return undefined;
  }
}
