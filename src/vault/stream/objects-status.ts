import { Readable } from 'node:stream';
import type { BlobStore } from '../../blobstore/blobstore.ts';
import type { Config } from '../../config/config.ts';
import type { Sql } from '../../db/connection.ts';
import { streamTargetErrors, streamTargetNames, streamWatermarks } from '../../objects/stream-queue.ts';
import {
  type Repository,
  readObjectsJournal,
  readObjectsStreamState,
  type StreamedObject,
} from '../repository/index.ts';
import { readObjectBytes } from '../sources/objects-restore.ts';
import { targetNames } from '../targets.ts';

export interface ObjectStreamTargetStatus {
  target: string;
  /** Every object row committed at or before this time is in the target's repository; undefined: not streamed yet. */
  recoverableUntil: Date | undefined;
  /** Now minus recoverableUntil, on the database's clock; undefined while recoverableUntil is. */
  lagSeconds: number | undefined;
  /** Objects queued that the target does not hold yet. */
  pending: number;
  /** The streamer's last failure on this target, while it lasts. */
  error?: string;
  /** What holds the recoverable point back from now (an object not stored yet, an open writing transaction). */
  heldBy?: string;
}

/** Continuous protection of the objects, per configured target, from the queue in PostgreSQL. */
export async function objectStreamStatus(sql: Sql, config: Config): Promise<ObjectStreamTargetStatus[]> {
  return await objectStreamStatusOf(sql, targetNames(config));
}

/** objectStreamStatus for the targets a streamer has served (metrics, which have no configuration). */
export async function streamedTargetsStatus(sql: Sql): Promise<ObjectStreamTargetStatus[]> {
  const names = await streamTargetNames(sql);
  return names.length ? await objectStreamStatusOf(sql, names) : [];
}

const HELD_BY_AFTER_SECONDS = 2;

async function objectStreamStatusOf(sql: Sql, names: string[]): Promise<ObjectStreamTargetStatus[]> {
  const errors = await streamTargetErrors(sql);
  return (await streamWatermarks(sql, names)).map((backlog) => {
    const error = errors.get(backlog.target);
    const lagSeconds = backlog.recoverableUntil
      ? Math.max(0, backlog.now.getTime() - backlog.recoverableUntil.getTime()) / 1000
      : undefined;
    // A lag of a second is the stream working; past that, what holds it back is worth saying.
    const heldBy =
      lagSeconds !== undefined && lagSeconds > HELD_BY_AFTER_SECONDS ? backlog.heldBy : undefined;
    return {
      target: backlog.target,
      recoverableUntil: backlog.recoverableUntil,
      lagSeconds,
      pending: backlog.pending,
      ...(error ? { error } : {}),
      ...(heldBy ? { heldBy } : {}),
    };
  });
}

/**
 * The objects' watermark a repository records, readable with the database gone: every object row committed
 * at or before it is in this repository. Each state and journal record is such a claim, so the newest of them
 * holds (a journal record written after the last state record may be newer); undefined when nothing was streamed.
 */
export async function readObjectsWatermark(repo: Repository): Promise<Date | undefined> {
  const state = await readObjectsStreamState(repo);
  let newest: number | undefined = state ? Date.parse(state.watermark) : undefined;
  for (const record of (await readObjectsJournal(repo)).records) {
    const time = record.watermark ? Date.parse(record.watermark) : Number.NaN;
    if (!Number.isNaN(time) && (newest === undefined || time > newest)) newest = time;
  }
  return newest === undefined ? undefined : new Date(newest);
}

/**
 * Every object the stream stored in this repository, by key. Journal records that do not read are added to
 * `unreadable` by key (their objects then count as missing), never skipped silently.
 */
export async function streamedObjects(
  repo: Repository,
  unreadable: string[] = [],
): Promise<Map<string, StreamedObject>> {
  const journal = await readObjectsJournal(repo);
  unreadable.push(...journal.unreadable);
  const objects = new Map<string, StreamedObject>();
  for (const record of journal.records) for (const object of record.objects) objects.set(object.key, object);
  return objects;
}

export interface StreamedRestoreResult {
  written: number;
  /** Already in the object store with the right size (same key, same bytes). */
  present: number;
  bytes: number;
  /** Not in the stream: the caller looks for them in a snapshot. */
  missing: string[];
  damaged: Array<{ key: string; reason: string }>;
  /** Journal records that did not read. */
  unreadable: string[];
}

/**
 * Writes the objects a restored database refers to (`keys`) from the stream into an object store. Each is
 * re-hashed against its SHA-256 before it is written: damage is named, never restored (I7).
 */
export async function restoreStreamedObjects(
  repo: Repository,
  keys: string[],
  objectStore: BlobStore,
): Promise<StreamedRestoreResult> {
  const unreadable: string[] = [];
  const streamed = await streamedObjects(repo, unreadable);
  const result: StreamedRestoreResult = {
    written: 0,
    present: 0,
    bytes: 0,
    missing: [],
    damaged: [],
    unreadable,
  };
  for (const key of keys) {
    const object = streamed.get(key);
    if (!object) {
      result.missing.push(key);
      continue;
    }
    try {
      const existing = await objectStore.head(key);
      if (existing && existing.size === object.size) {
        result.present++;
        continue;
      }
      const bytes = await readObjectBytes(repo, key, object.chunks, object.sha256);
      await objectStore.put(key, Readable.from([bytes]), { size: bytes.length });
      result.written++;
      result.bytes += bytes.length;
    } catch (error) {
      result.damaged.push({ key, reason: (error as Error).message });
    }
  }
  return result;
}
