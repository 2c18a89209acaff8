import { createHash } from 'node:crypto';
import type { BlobStore } from '../../blobstore/blobstore.ts';
import { DecodeError } from '../repository/codec.ts';
import { CorruptBlobError, type Repository } from '../repository/index.ts';
import { hashInKey, NOT_ITS_HASH } from './objects-key.ts';
import { ObjectRestoreThreads } from './objects-restore-thread.ts';
import { indexTree, runLimited } from './objects-tree.ts';

/**
 * One object's bytes from its chunks, re-hashed against the SHA-256 in its key (and `sha256` when known)
 * before anyone writes them: damage is named, never restored (I7).
 */
export async function readObjectBytes(
  repo: Repository,
  key: string,
  chunks: string[],
  sha256?: string,
): Promise<Buffer> {
  const expected = sha256 ?? hashInKey(key);
  const parts: Buffer[] = [];
  for (const chunk of chunks) parts.push(await (expected ? chunkContent(repo, chunk) : repo.getBlob(chunk)));
  // Most objects are one chunk: no copy of it.
  const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  if (expected && createHash('sha256').update(bytes).digest('hex') !== expected) {
    throw new Error(NOT_ITS_HASH);
  }
  return bytes;
}

/**
 * A chunk's plaintext, authenticated (when encrypted) and decompressed but not re-hashed against its id: for an
 * object whose whole bytes are then checked against the SHA-256 in its key, which a chunk of other content cannot
 * pass, so each byte is hashed once instead of twice (a restore of 2 GB of images: 1.7 s less CPU).
 */
async function chunkContent(repo: Repository, id: string): Promise<Buffer> {
  const stored = await repo.readStored(id);
  try {
    return (await repo.codec.decode(stored, repo.blobLimit)).plaintext;
  } catch (error) {
    if (error instanceof DecodeError) throw new CorruptBlobError(id, repo.location, error.message);
    throw error;
  }
}

export interface ObjectsRestoreResult {
  objects: number;
  written: number;
  present: number;
  /** Left out: the collector had removed their bytes from the database the restore replaces (I3). */
  purged: number;
  bytes: number;
  damaged: Array<{ key: string; reason: string }>;
  /** Objects each worker thread wrote (the main thread wrote the rest); none when no thread was started. */
  threadWrites: number[];
}

/**
 * Puts every object of a snapshot (or of `only` among them) back into an object store. A key already present
 * is kept only when its bytes hash to the SHA-256 in its name: a size says nothing about a file an interrupted
 * restore wrote without fsync. Every restored object is re-hashed before it is written, so damage is named,
 * never restored (I7). `syncOnce`: no fsync per object but one flush of the store at the end, for a caller
 * that keeps the store unreachable until this resolves (a restore's marks, I2).
 */
export async function restoreObjects(
  repo: Repository,
  treeId: string,
  target: BlobStore,
  options: {
    concurrency?: number;
    onProgress?: (done: number, total: number) => void;
    skip?: Set<string>;
    only?: Set<string>;
    syncOnce?: boolean;
    /**
     * Settles when the rest of the restore no longer needs the second core (the database is loaded): the objects
     * then take it with a second thread. Undefined: both threads from the start.
     */
    secondCoreFree?: Promise<unknown>;
  } = {},
): Promise<ObjectsRestoreResult> {
  const all = [...(await indexTree(repo, treeId)).entries()].filter(
    ([key]) => !options.only || options.only.has(key),
  );
  const files = await inStorageOrder(
    repo,
    all.filter(([key]) => !options.skip?.has(key)),
  );
  const result: ObjectsRestoreResult = {
    objects: files.length,
    written: 0,
    present: 0,
    purged: all.length - files.length,
    bytes: 0,
    damaged: [],
    threadWrites: [],
  };
  const durable = !options.syncOnce;
  // One listing instead of a stat (or, on S3, a HEAD request) per object; a few keys are asked one by one.
  const listed = options.only && options.only.size < LIST_FROM ? undefined : await sizesIn(target);
  const sizeInStore = async (key: string) => (listed ? listed.get(key) : (await target.head(key))?.size);
  let done = 0;
  // Objects written without an fsync each, into places where nothing is, are a second thread's to write; the main
  // thread writes only what that thread leaves (and serves the database's load meanwhile). Not worth starting for
  // a few objects.
  const toWrite = listed ? files.filter(([key, entry]) => listed.get(key) !== entry.size).length : 0;
  const thread =
    durable || toWrite < THREAD_FROM
      ? undefined
      : ObjectRestoreThreads.start(repo, target, options.secondCoreFree ? 1 : 2);
  // Not sooner: beside the database's load a second thread gained nothing (both cores busy) and took the restore's
  // peak memory past 300 MB (each thread keeps tens of MB of decrypted objects until its next collection).
  options.secondCoreFree?.then(
    () => thread?.add(),
    () => thread?.add(),
  );
  try {
    await runLimited(files, thread ? THREAD_LANES : (options.concurrency ?? 4), async ([key, entry]) => {
      try {
        const inStore = await sizeInStore(key);
        if (inStore === entry.size && (await hashesToKey(target, key))) {
          result.present++;
        } else {
          const onThread =
            thread && inStore === undefined
              ? await thread.restore(key, entry.chunks ?? [], hashInKey(key))
              : 'not-here';
          if (onThread !== 'not-here' && 'damaged' in onThread) throw new Error(onThread.damaged);
          const written =
            onThread === 'not-here'
              ? await restoreOnMainThread(repo, target, key, entry.chunks ?? [], durable)
              : onThread.written;
          result.written++;
          result.bytes += written;
        }
      } catch (error) {
        const reason = error instanceof CorruptBlobError ? error.message : (error as Error).message;
        result.damaged.push({ key, reason });
      }
      options.onProgress?.(++done, files.length);
    });
  } finally {
    await thread?.close();
  }
  result.threadWrites = thread?.writes ?? [];
  // Also when nothing was written: objects found in place may be an interrupted run's, still only in the page cache.
  if (!durable) await target.flush?.();
  return result;
}

/**
 * Objects in the second thread's hands or waiting for it. Every object offered to it first was faster than four
 * lanes on the main thread and two for it (a full restore of 2 GB of images and a 1,000,000-row table: 10.2-10.9 s
 * against 11.3-12.7 s, alternating); the main thread is then free for the database's load.
 */
const THREAD_LANES = 4;
/** Objects to write from which the second thread is started (starting it costs 30-50 ms and 15 MB). */
const THREAD_FROM = 32;

/** One object read, checked and written by the main thread; its size. */
async function restoreOnMainThread(
  repo: Repository,
  target: BlobStore,
  key: string,
  chunks: string[],
  durable: boolean,
): Promise<number> {
  const bytes = await readObjectBytes(repo, key, chunks);
  await target.put(key, bytes, { size: bytes.length, durable });
  return bytes.length;
}

/**
 * The objects in the order their first chunks lie in the repository's packs: the reads then walk each pack
 * front to back with one cached descriptor, instead of opening a different pack for nearly every object (a
 * restore of 40,000 small objects spent 5 s of its main thread opening, stat'ing and closing packs in key order).
 */
async function inStorageOrder<T extends { chunks?: string[] }>(
  repo: Repository,
  files: Array<[string, T]>,
): Promise<Array<[string, T]>> {
  const places = await Promise.all(
    files.map(async ([, entry]) => {
      const first = entry.chunks?.[0];
      return first ? await repo.index.location(first) : undefined;
    }),
  );
  const order = files.map((_, i) => i);
  // Loose blobs (no pack) last, in key order; packed ones by pack, then offset.
  order.sort((a, b) => {
    const pa = places[a];
    const pb = places[b];
    if (!pa || !pb) return pa ? -1 : pb ? 1 : a - b;
    if (pa.pack !== pb.pack) return pa.pack < pb.pack ? -1 : 1;
    return pa.offset - pb.offset;
  });
  return order.map((i) => files[i]!);
}

/** From how many keys asked for one listing of the store is cheaper than asking for each. */
const LIST_FROM = 100;

/** Every object in the store and its size. */
async function sizesIn(store: BlobStore): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for await (const info of store.list()) sizes.set(info.key, info.size);
  return sizes;
}

/** Whether the object in the store has the bytes its name promises (its SHA-256); unnamed bytes are rewritten. */
async function hashesToKey(store: BlobStore, key: string): Promise<boolean> {
  const sha256 = hashInKey(key);
  if (!sha256) return false;
  const hash = createHash('sha256');
  for await (const chunk of await store.get(key)) hash.update(chunk as Buffer);
  return hash.digest('hex') === sha256;
}
