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
