import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { BlobStore } from '../../blobstore/blobstore.ts';
import { readFileUpToSync } from '../../lib/files.ts';
import { ObjectDamagedError, verifyingStream } from '../../objects/integrity.ts';
import { type Repository, type StoredFile, storeObjectBytes, type TreeEntry } from '../repository/index.ts';
import { limiter } from '../repository/io.ts';
import { hashInKey } from './objects-key.ts';
import { restoreObjects } from './objects-restore.ts';
import { MOST_IN_HAND, ObjectSealThread } from './objects-seal-thread.ts';
import { indexTree, runLimited } from './objects-tree.ts';
import { RestoreVerificationError, type SnapshotSource } from './types.ts';

export interface ObjectsBackupStats {
  objects: number;
  /** Objects whose stored copy was damaged and no backup held: left out of the snapshot, never stored as good. */
  damaged: string[];
  reused: number;
  read: number;
  bytesRead: number;
  blobsAdded: number;
  bytesAdded: number;
}

interface Folder {
  files: Map<string, { key: string }>;
  folders: Map<string, Folder>;
}

const newFolder = (): Folder => ({ files: new Map(), folders: new Map() });

/**
 * The objects source: the live objects that the database snapshot refers to (I8), as a tree mirroring
 * their keys. Objects are immutable and content-addressed, so an object whose key was in the parent
 * snapshot is copied by key — its chunks reused without reading a byte; only new objects are read.
 */
export async function backupObjects(
  repo: Repository,
  objects: BlobStore,
  keys: string[],
  options: {
    parentTree?: string;
    concurrency?: number;
    onProgress?: (done: number, total: number) => void;
    onDamaged?: DamagedObjectHandler;
    /** false: every object read, checked and sealed on the main thread (objects-seal-thread.ts). */
    sealThread?: boolean;
  } = {},
): Promise<{ treeId: string; stats: ObjectsBackupStats }> {
  const previous = await indexTree(repo, options.parentTree, '', new Map(), true);
  const stats: ObjectsBackupStats = {
    objects: keys.length,
    damaged: [],
    reused: 0,
    read: 0,
    bytesRead: 0,
    blobsAdded: 0,
    bytesAdded: 0,
  };
  const entries = new Map<string, TreeEntry>();
  let done = 0;
  // Started at the first object to read: a backup with nothing new reads nothing.
  let thread: ObjectSealThread | undefined;
  let threadStarted = false;
  const sealOnThread = async (key: string, sha256: string | undefined) => {
    if (!sha256 || options.sealThread === false) return undefined;
    if (!threadStarted) {
      threadStarted = true;
      thread = ObjectSealThread.start(repo, objects);
    }
    return await thread?.store(key, sha256);
  };
  // Objects the main thread reads and stores itself are held whole in memory: at most MAIN_THREAD_LANES at once.
  const onMainThread = limiter(MAIN_THREAD_LANES);
  // From a folder store, as many as the seal thread may hold: it waits for room itself (fewer large images).
  const lanes = options.concurrency ?? (objects.localPath ? MOST_IN_HAND : MAIN_THREAD_LANES);
  try {
    await runLimited(keys, lanes, async (key) => {
      const name = key.slice(key.lastIndexOf('/') + 1);
      const known = previous.get(key);
      if (known?.chunks && (await everyChunkPresent(repo, known.chunks))) {
        entries.set(key, { ...known, name });
        stats.reused++;
      } else {
        // Images are compressed already; anything else lets the first chunk decide.
        const image = /\.(png|jpe?g|webp)$/.test(key);
        const stored =
          (image ? await sealOnThread(key, hashInKey(key)) : undefined) ??
          (await onMainThread(() =>
            storeVerified(repo, objects, key, image ? { compress: false } : {}, options.onDamaged),
          ));
        if (!stored) {
          stats.damaged.push(key);
          options.onProgress?.(++done, keys.length);
          return;
        }
        entries.set(key, {
          name,
          type: 'file',
          mode: 0o644,
          mtimeMs: 0,
          size: stored.size,
          chunks: stored.chunks,
        });
        stats.read++;
        stats.bytesRead += stored.size;
        stats.blobsAdded += stored.blobsAdded;
        stats.bytesAdded += stored.bytesAdded;
      }
      options.onProgress?.(++done, keys.length);
    });
  } finally {
    await thread?.close();
  }
  return { treeId: await writeObjectsTree(repo, keys, entries), stats };
}

/** The objects tree: one folder per part of the keys, each object's entry in its folder (those stored). */
async function writeObjectsTree(
  repo: Repository,
  keys: string[],
  entries: ReadonlyMap<string, TreeEntry>,
): Promise<string> {
  const root = newFolder();
  for (const key of keys) {
    const parts = key.split('/');
    let folder = root;
    for (const part of parts.slice(0, -1)) {
      let child = folder.folders.get(part);
      if (!child) {
        child = newFolder();
        folder.folders.set(part, child);
      }
      folder = child;
    }
    folder.files.set(parts.at(-1)!, { key });
  }
  const write = async (folder: Folder): Promise<string> => {
    const list: TreeEntry[] = [];
    for (const { key } of folder.files.values()) {
      const entry = entries.get(key);
      if (entry) list.push(entry);
    }
    for (const [name, child] of folder.folders) {
      list.push({ name, type: 'dir', mode: 0o755, mtimeMs: 0, size: 0, subtree: await write(child) });
    }
    return await repo.writeTree(list);
  };
  return await write(root);
}

/** Objects read and stored by the main thread at once (each held whole, up to the chunker's largest chunk). */
const MAIN_THREAD_LANES = 8;

/**
 * Stores one object's bytes (storeObjectBytes: the snapshot's objects tree and the stream name the same blobs, so
 * each deduplicates against the other); what it holds.
 */
export async function storeObject(
  repo: Repository,
  objects: BlobStore,
  key: string,
): Promise<StoredFile & { sha256: string }> {
  // Images are compressed already; anything else lets the first chunk decide.
  const compress = /\.(png|jpe?g|webp)$/.test(key) ? { compress: false } : {};
  const hash = createHash('sha256');
  async function* hashed(source: AsyncIterable<Uint8Array>) {
    for await (const chunk of source) {
      hash.update(chunk);
      yield chunk;
    }
  }
  const stored = await storeObjectBytes(repo, hashed(await objects.get(key)), compress);
  return { ...stored, sha256: hash.digest('hex') };
}

/** A damaged object's true bytes from elsewhere (a backup), put back into the store; undefined when none. */
export type DamagedObjectHandler = (
  key: string,
  sha256: string,
  repo: Repository,
) => Promise<{ bytes: Buffer } | undefined>;

/**
 * Stores an object's bytes verified against the SHA-256 in its key as they stream (I7): a damaged copy is
 * never stored as if it were good. Its true bytes come from `onDamaged` (an older snapshot) when it can; else
 * the object is left out of the snapshot and undefined returned.
 */
async function storeVerified(
  repo: Repository,
  objects: BlobStore,
  key: string,
  compress: { compress?: boolean },
  onDamaged: DamagedObjectHandler | undefined,
): Promise<StoredFile | undefined> {
  const sha256 = hashInKey(key);
  // A small object read whole: a stream costs an open, a stat and several reads and callbacks per object, which
  // were most of the main thread's time in a backup of 40,000 images. A local one is read with blocking calls:
  // a backup runs in its own process (the CLI, the scheduler), and the four thread-pool round trips of an
  // asynchronous read cost the main thread twice what the read does (backing up 10,000 objects of 10-50 KB:
  // 2.1-3.7 s of CPU instead of 4.5-6.0 s; a pool of worker threads doing the reads, hashing and sealing took
  // 4.9-7.1 s and 100 MB more memory).
  const local = objects.localPath?.(key);
  const read = local ? readLocalObject(local) : 'unread';
  // A large object was found large already: it is streamed below without asking its size again.
  const whole =
    read === 'unread'
      ? await objects.getIfSmall?.(key, WHOLE_OBJECT_BYTES)
      : read === 'large'
        ? undefined
        : read;
  if (whole && (!sha256 || createHash('sha256').update(whole).digest('hex') === sha256))
    return await storeObjectBytes(repo, whole, compress);
  if (whole) return await storeRepaired(repo, key, sha256!, compress, onDamaged);
  if (!sha256) return await storeObjectBytes(repo, await objects.get(key), compress);
  const verify = verifyingStream(key, sha256);
  pipeline(await objects.get(key), verify).catch(() => {});
  try {
    return await storeObjectBytes(repo, verify, compress);
  } catch (error) {
    if (!(error instanceof ObjectDamagedError)) throw error;
    return await storeRepaired(repo, key, sha256, compress, onDamaged);
  }
}

/** A damaged object's true bytes from `onDamaged`, stored; undefined when there are none. */
async function storeRepaired(
  repo: Repository,
  key: string,
  sha256: string,
  compress: { compress?: boolean },
  onDamaged: DamagedObjectHandler | undefined,
): Promise<StoredFile | undefined> {
  const repaired = await onDamaged?.(key, sha256, repo);
  return repaired ? await storeObjectBytes(repo, repaired.bytes, compress) : undefined;
}

/** A local object's bytes read with blocking calls; 'large' past the whole-read size; 'unread' when it failed. */
function readLocalObject(file: string): Buffer | 'large' | 'unread' {
  try {
    return readFileUpToSync(file, WHOLE_OBJECT_BYTES) ?? 'large';
  } catch {
    // Read again through the store, which names what is wrong.
    return 'unread';
  }
}

/** Objects up to this size are read whole rather than streamed. */
const WHOLE_OBJECT_BYTES = 8 * 1024 * 1024;

/** Whether the repository's index holds every chunk of a file a parent snapshot names (so it can be named again). */
export async function everyChunkPresent(repo: Repository, chunks: readonly string[]): Promise<boolean> {
  for (const chunk of chunks) if (!(await repo.hasBlob(chunk))) return false;
  return true;
}

/** What the objects source needs besides the store: for a backup, or for a restore. */
export interface ObjectsSourceOptions {
  /** Backup: the objects the database snapshot refers to, which the postgres source read. */
  liveKeys?: () => string[];
  /** Backup: what to do with an object whose bytes fail their hash. */
  onDamaged?: DamagedObjectHandler;
  /** Restore: objects not to write back (the collector removed them since). */
  skip?: Set<string>;
  /** Restore: settles when the rest of the restore leaves the second core to the objects. */
  secondCoreFree?: Promise<unknown>;
}

/**
 * The objects the database snapshot refers to, copied by key (I8); restored into `objects`, where an object that
 * fails its hash is named, never written.
 */
export function objectsSource(
  objects: BlobStore,
  { liveKeys, onDamaged, skip, secondCoreFree }: ObjectsSourceOptions = {},
): SnapshotSource<{ count: number; damaged?: string[] }> {
  return {
    name: 'objects',
    backup: async (ctx) => {
      if (!liveKeys) throw new Error('Backing up objects needs the live keys the postgres source read.');
      const live = liveKeys();
      ctx.progress('objects', `${live.length} objects`);
      const result = await backupObjects(ctx.repo, objects, live, {
        ...(ctx.parent?.trees.objects ? { parentTree: ctx.parent.trees.objects } : {}),
        onProgress: (done, total) => ctx.progress('objects', undefined, { done, total }),
        ...(onDamaged ? { onDamaged } : {}),
      });
      const { damaged, ...stats } = result.stats;
      return {
        tree: result.treeId,
        facts: { count: live.length - damaged.length, ...(damaged.length ? { damaged } : {}) },
        stats: { ...stats, damaged: damaged.length },
      };
    },
    restore: async (ctx) => {
      ctx.progress('objects');
      const result = await restoreObjects(ctx.repo, ctx.tree, objects, {
        ...(skip ? { skip } : {}),
        ...(secondCoreFree ? { secondCoreFree } : {}),
        syncOnce: true,
        onProgress: (done, total) => ctx.progress('objects', undefined, { done, total }),
      });
      if (result.damaged.length) {
        throw new RestoreVerificationError(
          `${result.damaged.length} object(s) are damaged in the backup and were not restored: ${result.damaged
            .slice(0, 5)
            .map((d) => `${d.key} (${d.reason})`)
            .join('; ')}.`,
        );
      }
      return { ...result, damaged: result.damaged.length };
    },
  };
}
