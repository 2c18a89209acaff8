import type { BlobStore } from '../../blobstore/index.ts';
import {
  type StoreDirectoryOptions,
  type StoredFile,
  type StoreFileOptions,
  type StoreStats,
  storeDirectory,
  storeFile,
} from './archiver.ts';
import { BlobIndex } from './blob-index.ts';
import { BlobPlaces } from './blob-places.ts';
import { canonicalJson } from './canonical-json.ts';
import { type CheckOptions, type CheckReport, checkRepository } from './check.ts';
import { Chunker } from './chunker.ts';
import { Codec, DECODE_LIMITS, type Kind, lengthOf } from './codec.ts';
import { type CopyResult, copySnapshots } from './copy.ts';
import type { KeyMaterial } from './crypto.ts';
import { CorruptBlobError, InvalidTreeError, MissingBlobError, RepositoryExistsError } from './errors.ts';
import {
  type ChunkerParams,
  CONFIG_KEY,
  type ConfigFile,
  DATA_PREFIX,
  dataKey,
  INDEX_PREFIX,
  isId,
  PACKS_PREFIX,
  SNAPSHOTS_PREFIX,
  snapshotKey,
} from './format.ts';
import type { BlobType, PutBlobResult, RepositoryHandle } from './handle.ts';
import { acquireLock, type Lock, type LockOptions } from './locks.ts';
import { readRepositoryConfig } from './open-config.ts';
import { type PruneResult, pruneBlobs } from './pack-prune.ts';
import {
  checkAuthKey,
  decodeRecord,
  encodeRecord,
  type UpgradeResult,
  type UpgradeVouch,
  upgradeRecords,
} from './records.ts';
import { type RestoreOptions, type RestoreResult, restoreTree } from './restorer.ts';
import { type NewConfigOptions, newConfig, unlockConfig } from './secrets.ts';
import { checkSnapshotRecord, type Snapshot, type SnapshotRecord } from './snapshot.ts';
import { listSnapshotFiles, loadSnapshotRecord } from './snapshot-load.ts';
import { decodeTree, encodeTree, type Tree, type TreeEntry } from './tree.ts';

export type { BlobType, PutBlobResult } from './handle.ts';

export interface OpenOptions {
  /** BACKUP_PASSWORD; an empty string counts as none. */
  password?: string;
  /** Unencrypted repositories: the key their records are authenticated with (records.ts), never stored in them. */
  authKey?: Buffer;
}

export interface InitOptions extends Omit<NewConfigOptions, 'like'> {
  /**
   * Copy this repository's chunker parameters and keys: the same content then gets the same blob ids
   * in both, so one chunking pass can feed several targets.
   */
  like?: Repository;
}

/**
 * A vault repository on one blobstore target: config, content-addressed blobs (data and trees),
 * snapshots and locks. Every read is verified against the blob's name (I7); a snapshot is one atomic
 * put, written by the caller after everything it refers to (I6).
 */
export class Repository implements RepositoryHandle {
  readonly location: string;
  readonly chunker: Chunker;
  readonly codec: Codec;
  /** What data/ and the pack index hold, listed once and kept current by this process's writes. */
  readonly index: BlobIndex;
  /** Where blobs are written and read: their own files or pack files. */
  private readonly places: BlobPlaces;
  private readonly inflight = new Map<string, Promise<PutBlobResult>>();
  private upgraded = false;

  private constructor(
    readonly store: BlobStore,
    readonly config: ConfigFile,
    private readonly keys: KeyMaterial | undefined,
    readonly chunkerParams: ChunkerParams,
    private readonly authKey: Buffer | undefined,
  ) {
    this.location = store.location;
    this.chunker = new Chunker(chunkerParams);
    this.codec = new Codec(keys, config.compression.level);
    this.places = new BlobPlaces(this);
    this.index = new BlobIndex(
      store,
      this.places.packsAllowed ? (id) => this.places.readIndex(id) : undefined,
    );
  }

  /** Creates a repository on an empty target; refuses a target that holds a config or backup data. */
  static async init(store: BlobStore, options: InitOptions = {}): Promise<Repository> {
    if (await store.head(CONFIG_KEY)) throw new RepositoryExistsError(store.location);
    for (const prefix of [DATA_PREFIX, SNAPSHOTS_PREFIX, PACKS_PREFIX, INDEX_PREFIX]) {
      for await (const _ of store.list(prefix)) throw new RepositoryExistsError(store.location, true);
    }
    const { like, ...rest } = options;
    const made = await newConfig({
      ...rest,
      ...(like ? { like: { params: like.chunkerParams, keys: like.keys } } : {}),
    });
    const bytes = Buffer.from(`${JSON.stringify(made.config, null, 2)}\n`);
    if (!(await store.putIfAbsent(CONFIG_KEY, bytes, { size: bytes.length }))) {
      throw new RepositoryExistsError(store.location);
    }
    const authKey = made.keys ? undefined : options.authKey;
    return new Repository(store, made.config, made.keys, made.chunker, authKey);
  }

  static async open(store: BlobStore, options: OpenOptions = {}): Promise<Repository> {
    const config = await readRepositoryConfig(store);
    const { keys, chunker } = await unlockConfig(config, store, options.password || undefined);
    const authKey = checkAuthKey(config, keys, options.authKey, store.location);
    return new Repository(store, config, keys, chunker, authKey);
  }

  get id(): string {
    return this.config.id;
  }

  get encrypted(): boolean {
    return this.keys !== undefined;
  }

  /** The id content has (or would have) in this repository. */
  blobId(plaintext: Buffer): string {
    return this.codec.idOf(plaintext);
  }

  /**
   * Stores a blob unless the repository holds it already. Safe to call concurrently: the same content
   * in flight twice is uploaded once. `compress: false` skips zstd (the caller knows it is compressed).
   */
  async putBlob(
    type: BlobType,
    plaintext: Buffer,
    options: { compress?: boolean } = {},
  ): Promise<PutBlobResult> {
    const id = this.codec.idOf(plaintext);
    const sizes = await this.index.load();
    // From here to the inflight registration nothing awaits, so two callers cannot both upload.
    const known = sizes.get(id) ?? this.places.pendingSize(id);
    if (known !== undefined) return { id, stored: false, storedSize: known };
    const pending = this.inflight.get(id);
    if (pending) return { ...(await pending), stored: false };
    const upload = (async () => {
      const parts = await this.codec.encodeParts(type, plaintext, options.compress, this.blobLimit);
      await this.places.put(id, parts);
      return { id, stored: true, storedSize: lengthOf(parts) };
    })();
    this.inflight.set(id, upload);
    try {
      return await upload;
    } finally {
      this.inflight.delete(id);
    }
  }

  /** The plaintext of a blob, authenticated, decompressed and re-hashed against its id. */
  async getBlob(id: string): Promise<Buffer> {
    return (await this.readBlob(id)).plaintext;
  }

  /** getBlob, plus the kind its header records. */
  async readBlob(id: string): Promise<{ kind: Kind; plaintext: Buffer }> {
    const stored = await this.readStored(id);
    const fail = (reason: string) => new CorruptBlobError(id, this.location, reason);
    return this.codec.decodeNamed(id, stored, fail, this.blobLimit);
  }

  /** A blob's bytes as stored (§4), loose or packed, not decoded: what a copy to another target sends. */
  readStored(id: string): Promise<Buffer> {
    if (!isId(id)) throw new TypeError(`Not a blob id: ${JSON.stringify(id)}.`);
    return this.places.read(id);
  }

  /** readStored, once the bytes are checked to decode to content with this id. */
  async readStoredVerified(id: string): Promise<Buffer> {
    const stored = await this.readStored(id);
    const fail = (reason: string) => new CorruptBlobError(id, this.location, reason);
    await this.codec.decodeNamed(id, stored, fail, this.blobLimit);
    return stored;
  }

  /** Stores a blob's bytes as another target stored them (same keys: `like:` at init), unless held already. */
  async putStored(id: string, stored: Buffer): Promise<boolean> {
    if ((await this.index.load()).has(id) || this.places.pendingSize(id) !== undefined) return false;
    await this.places.put(id, stored);
    return true;
  }

  /** New blobs go into pack files from now on (format 3); `flushBlobs`, or a snapshot, makes them findable. */
  packBlobs(): void {
    this.places.packBlobs();
  }

  /** Makes every blob stored so far durable and findable: before any record that names them (I6). */
  flushBlobs(): Promise<void> {
    return this.places.flush();
  }

  /** Whether the target holds the blob now: asked of the target, for writers that must not trust the cache. */
  blobExists(id: string): Promise<boolean> {
    return this.places.exists(id);
  }

  /** Whether the index holds the blob (no request once the index is loaded). */
  async hasBlob(id: string): Promise<boolean> {
    return (await this.index.load()).has(id);
  }

  /** Stores a directory listing; an unchanged directory gives the same id and is not stored again. */
  async writeTree(entries: readonly TreeEntry[]): Promise<string> {
    return (await this.putBlob('tree', encodeTree(entries))).id;
  }

  /** A verified tree whose every entry is safe to restore; InvalidTreeError otherwise. */
  async readTree(id: string): Promise<Tree> {
    const plaintext = await this.getBlob(id);
    try {
      return decodeTree(plaintext);
    } catch (error) {
      throw new InvalidTreeError(id, (error as Error).message);
    }
  }

  /**
   * Writes the snapshot record in one atomic put and returns its id. The caller stores every blob the
   * record refers to first (I6); the root trees are checked against the index as a last guard.
   */
  async saveSnapshot(record: SnapshotRecord): Promise<string> {
    checkSnapshotRecord(record);
    await this.flushBlobs();
    const sizes = await this.index.load();
    for (const [source, tree] of Object.entries(record.trees)) {
      if (!sizes.has(tree)) throw new MissingBlobError(tree, `${this.location} (root tree of ${source})`);
    }
    const plaintext = Buffer.from(canonicalJson(record));
    const id = this.codec.idOf(plaintext);
    if (plaintext.length > DECODE_LIMITS.snapshot)
      throw new TypeError(`A snapshot record of ${plaintext.length} bytes is more than a reader accepts.`);
    const bytes = await this.encodeRecord(snapshotKey(id), plaintext, DECODE_LIMITS.snapshot);
    await this.store.put(snapshotKey(id), bytes, { size: bytes.length });
    return id;
  }

  /** A record's stored bytes: sealed when encrypted, tagged under the repository key when not (records.ts). */
  encodeRecord(name: string, plaintext: Buffer, limit?: number): Promise<Buffer> {
    return encodeRecord(this.codec, this.authKey, name, plaintext, limit);
  }

  /** A record's plaintext, authenticated for its name; DecodeError saying why it is refused. */
  decodeRecord(name: string, stored: Buffer, limit?: number): Promise<Buffer> {
    return decodeRecord(this.codec, this.authKey, name, stored, limit);
  }

  /** An unencrypted repository of format 1, whose records are not yet authenticated: a writer upgrades it. */
  get needsUpgrade(): boolean {
    return !this.encrypted && !this.config.authentication && !this.upgraded;
  }

  /** Tags the records the service vouches for and names the key in the config (records.ts). */
  async upgrade(vouch: UpgradeVouch): Promise<UpgradeResult> {
    const result = await upgradeRecords(this, this.authKey!, vouch);
    this.upgraded = true;
    return result;
  }

  /** Snapshot ids, sorted. */
  async listSnapshots(): Promise<string[]> {
    return (await listSnapshotFiles(this.store)).map((file) => file.id);
  }

  /** Snapshot ids with when their file was last written, as the target lists them. */
  listSnapshotFiles(): Promise<Array<{ id: string; modified: Date | undefined }>> {
    return listSnapshotFiles(this.store);
  }

  /** A verified snapshot; a damaged or malformed one is InvalidSnapshotError naming it. */
  loadSnapshot(id: string): Promise<Snapshot> {
    return loadSnapshotRecord(this, id);
  }

  async deleteSnapshot(id: string): Promise<void> {
    if (!isId(id)) throw new TypeError(`Not a snapshot id: ${JSON.stringify(id)}.`);
    await this.store.delete(snapshotKey(id));
  }

  /** Takes a shared or exclusive lock (see locks.ts); RepositoryLockedError when it conflicts. */
  lock(options: LockOptions): Promise<Lock> {
    return acquireLock(this, options);
  }

  /** Chunks and stores a stream (see archiver.ts). */
  storeFile(source: AsyncIterable<Uint8Array | string>, options?: StoreFileOptions): Promise<StoredFile> {
    return storeFile(this, source, options);
  }

  /** Stores a directory incrementally against its tree in the parent snapshot (see archiver.ts). */
  storeDirectory(
    dir: string,
    options?: StoreDirectoryOptions,
  ): Promise<{ treeId: string; stats: StoreStats }> {
    return storeDirectory(this, dir, options);
  }

  /** Writes a tree under targetDir, verified and confined to it (see restorer.ts). */
  restoreTree(treeId: string, targetDir: string, options?: RestoreOptions): Promise<RestoreResult> {
    return restoreTree(this, treeId, targetDir, options);
  }

  check(options: CheckOptions = {}): Promise<CheckReport> {
    return checkRepository(this, options);
  }

  /** Copies snapshots with every blob and ledger entry they may need, as stored bytes (see copy.ts). */
  copySnapshotsTo(to: Repository, snapshotIds: string[]): Promise<CopyResult> {
    return copySnapshots(this, to, snapshotIds);
  }

  /** Deletes the blobs in `dead` from files and packs (prune's job, under an exclusive lock; see pack-prune.ts). */
  async pruneBlobs(
    dead: ReadonlySet<string>,
    assertHeld: () => void,
    deleteUnindexed?: boolean,
  ): Promise<PruneResult> {
    return pruneBlobs(this, await this.index.current(), dead, assertHeld, deleteUnindexed);
  }

  /** Deletes a blob's own file under data/ (packed copies are prune's: pruneBlobs); gone from the index too. */
  async deleteBlob(id: string): Promise<void> {
    if (!isId(id)) throw new TypeError(`Not a blob id: ${JSON.stringify(id)}.`);
    await this.store.delete(dataKey(id));
    this.index.forget(id);
  }

  /** The most a data or tree blob may decode to: at least the chunker's largest chunk. */
  get blobLimit(): number {
    return Math.max(DECODE_LIMITS.blob, this.chunkerParams.maxSize);
  }
}
