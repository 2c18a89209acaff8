import { BlobNotFoundError } from '../../blobstore/index.ts';
import type { IndexListing } from './blob-index.ts';
import {
  CorruptBlobError,
  InvalidSnapshotError,
  InvalidTreeError,
  MissingBlobError,
  RepositoryError,
  SnapshotNotFoundError,
} from './errors.ts';
import { CONFIG_KEY, parseConfig } from './format.ts';
import type { RepositoryHandle } from './handle.ts';
import { limiter, readAll } from './io.ts';
import { quarantineDamaged } from './repair.ts';
import type { Snapshot } from './snapshot.ts';
import { readObjectsJournal } from './stream.ts';
import { continuousRoots } from './wal-records.ts';

export interface CheckOptions {
  /** Re-read and re-hash every blob in data/, not only the trees. */
  readData?: boolean;
  /** Requests at once. */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
  /**
   * Move every damaged blob and unreadable snapshot record aside, under `quarantine/<time>/` with its key
   * unchanged (never deleted), so that the next backup stores that content again instead of deduplicating
   * against the damaged copy. The caller holds an exclusive lock.
   */
  repair?: boolean;
}

/** Where a broken blob hurts: a file (or, for a tree, a whole directory ending in `/`) of a snapshot. */
export interface BrokenPath {
  snapshot: string;
  /** `<source>/<path inside it>`. */
  path: string;
}

export interface BlobProblem {
  id: string;
  reason: string;
  paths: BrokenPath[];
}

export interface CheckReport {
  ok: boolean;
  /** Why `config` no longer reads back as the config this repository was opened with, if it does not. */
  configProblem: string | undefined;
  /** The format version read (docs/repository-format.md §10). */
  formatVersion: number;
  /** Pack files (format 3). */
  packs: number;
  /** Index files that do not read: the blobs they name are unknown until `--repair` rebuilds the index. */
  unreadableIndexes: { id: string; reason: string }[];
  /** Packs no index names: left by an interrupted backup (prune deletes them), or named only by an unreadable index. */
  unindexedPacks: string[];
  snapshots: number;
  trees: number;
  blobs: number;
  dataRead: boolean;
  damagedSnapshots: { id: string; reason: string }[];
  /** Blobs that are present but do not verify (any blob with readData; trees always). */
  damagedBlobs: BlobProblem[];
  /** Blobs a snapshot refers to that the repository does not hold. */
  missingBlobs: BlobProblem[];
  /** Keys under data/ that are not blob names; reported, never touched. */
  unexpectedFiles: string[];
  /** Journal records of streamed objects that do not read (their blobs cannot be told apart for prune). */
  unreadableStreamRecords: string[];
  /** Blobs no snapshot refers to (for prune); undefined when a damaged snapshot or tree hides references. */
  unreferencedBlobs: string[] | undefined;
  /** Base backup and WAL records that do not read (continuous protection). */
  damagedRecords: string[];
  /** With repair: the keys moved aside, and where to. */
  quarantined: { key: string; to: string }[];
}

/**
 * Checks structure (every snapshot and every tree it reaches loads, every referenced blob exists) and,
 * with readData, every blob's content. Deletes nothing; with repair, moves damaged blobs and unreadable
 * snapshot records aside into quarantine/ (never deletes them). The caller holds a shared lock, or an
 * exclusive one to repair.
 */
export async function checkRepository(
  repo: RepositoryHandle,
  options: CheckOptions = {},
): Promise<CheckReport> {
  const limit = limiter(options.concurrency ?? 4);
  const configProblem = await checkConfig(repo);
  const listing = await repo.index.reload();
  const { sizes, unexpected } = listing;
  const damaged = new Map<string, string>();
  const ids = await repo.listSnapshots();
  const { snapshots, damagedSnapshots } = await loadSnapshots(repo, ids, limit);

  // Base backups and WAL are roots too: their blobs are in use though no snapshot names them. Objects
  // streamed between snapshots too: prune must never take a blob their journal names.
  const continuous = await continuousRoots(repo);
  const journal = await readObjectsJournal(repo);
  const roots = [...snapshots.flatMap((snapshot) => Object.values(snapshot.trees)), ...continuous.roots];
  const chunks = journal.records.flatMap((record) => record.objects.flatMap((object) => object.chunks));
  let walk = await walkRoots(repo, sizes, roots, chunks, limit, damaged);
  const { referenced, verifiedTrees } = walk;
  if (walk.missing.size > 0) {
    // Records read after the listing may name blobs a live stream (protect, the object stream) stored after
    // it: what looks missing is looked for again in a listing taken after every record was read. Only the
    // first listing's blobs can be unreferenced, and what either walk reached is referenced, so a blob stored
    // meanwhile is never taken for unused.
    walk = await walkRoots(repo, (await repo.index.fresh()).sizes, roots, chunks, limit, damaged);
    for (const id of walk.referenced) referenced.add(id);
  }
  const { missing, visits } = walk;

  if (options.readData) {
    const toRead = [...sizes.keys()].filter((id) => !verifiedTrees.has(id) && !damaged.has(id));
    await readData(repo, toRead, damaged, limit, options.onProgress);
  }
  const unindexedPacks = unindexed(listing);
  const unreadableIndexes = listing.unreadableIndexes;
  const quarantined = options.repair ? await quarantineDamaged(repo, listing, damaged, damagedSnapshots) : [];
  if (quarantined.length) for (const id of damaged.keys()) sizes.delete(id);

  const bad = new Set([...damaged.keys(), ...missing]);
  const paths =
    bad.size > 0 ? await brokenPaths(repo, snapshots, bad, limit) : new Map<string, BrokenPath[]>();
  const problem = (id: string, reason: string): BlobProblem => ({ id, reason, paths: paths.get(id) ?? [] });
  const damagedBlobs = [...damaged].map(([id, reason]) => problem(id, reason));
  const missingBlobs = [...missing].map((id) => problem(id, 'missing'));
  const treesBroken = [...bad].some((id) => visits.has(id));
  return {
    ok:
      !configProblem &&
      damagedSnapshots.length === 0 &&
      continuous.unreadable.length === 0 &&
      damaged.size === 0 &&
      missing.size === 0 &&
      unreadableIndexes.length === 0 &&
      journal.unreadable.length === 0,
    configProblem,
    formatVersion: repo.config.version,
    packs: listing.packs.size,
    unreadableIndexes,
    unindexedPacks,
    snapshots: ids.length,
    trees: visits.size,
    blobs: sizes.size,
    dataRead: Boolean(options.readData),
    damagedSnapshots,
    damagedBlobs: damagedBlobs.sort(byId),
    missingBlobs: missingBlobs.sort(byId),
    unexpectedFiles: unexpected,
    unreadableStreamRecords: journal.unreadable,
    unreferencedBlobs:
      damagedSnapshots.length > 0 ||
      unreadableIndexes.length > 0 ||
      continuous.unreadable.length > 0 ||
      treesBroken ||
      journal.unreadable.length > 0
        ? undefined
        : [...sizes.keys()].filter((id) => !referenced.has(id)).sort(),
    quarantined,
    damagedRecords: continuous.unreadable,
  };
}

/**
 * Every tree reachable from the roots, each read once, and every chunk looked up in the listing: what is
 * missing from it, what is referenced, the trees that verified.
 */
async function walkRoots(
  repo: RepositoryHandle,
  sizes: Map<string, number>,
  roots: string[],
  journalChunks: string[],
  limit: ReturnType<typeof limiter>,
  damaged: Map<string, string>,
) {
  const missing = new Set<string>();
  const referenced = new Set<string>();
  const verifiedTrees = new Set<string>();
  const visits = new Map<string, Promise<void>>();
  const visit = (treeId: string): Promise<void> => {
    let pending = visits.get(treeId);
    if (!pending) {
      referenced.add(treeId);
      pending = (async () => {
        if (!sizes.has(treeId)) return void missing.add(treeId);
        const tree = await limit(() => readTreeOrDamage(repo, treeId, damaged));
        if (!tree) return;
        verifiedTrees.add(treeId);
        const subtrees: Promise<void>[] = [];
        for (const entry of tree.entries) {
          for (const chunk of entry.chunks ?? []) {
            referenced.add(chunk);
            if (!sizes.has(chunk)) missing.add(chunk);
          }
          if (entry.subtree) subtrees.push(visit(entry.subtree));
        }
        await Promise.all(subtrees);
      })();
      visits.set(treeId, pending);
    }
    return pending;
  };
  await Promise.all(roots.map(visit));
  for (const chunk of journalChunks) {
    referenced.add(chunk);
    if (!sizes.has(chunk)) missing.add(chunk);
  }
  return { missing, referenced, verifiedTrees, visits };
}

/** Every snapshot record; an unreadable one is reported as damaged, one forgotten meanwhile is skipped. */
async function loadSnapshots(
  repo: RepositoryHandle,
  ids: string[],
  limit: ReturnType<typeof limiter>,
): Promise<{ snapshots: Snapshot[]; damagedSnapshots: { id: string; reason: string }[] }> {
  const snapshots: Snapshot[] = [];
  const damagedSnapshots: { id: string; reason: string }[] = [];
  await Promise.all(
    ids.map((id) =>
      limit(async () => {
        try {
          snapshots.push(await repo.loadSnapshot(id));
        } catch (error) {
          if (error instanceof SnapshotNotFoundError) return; // forgotten while we looked
          if (!(error instanceof InvalidSnapshotError)) throw error;
          damagedSnapshots.push({ id, reason: error.reason });
        }
      }),
    ),
  );
  return { snapshots, damagedSnapshots };
}

/** Re-reads and re-hashes each blob; a corrupt one is recorded in `damaged`. */
async function readData(
  repo: RepositoryHandle,
  ids: string[],
  damaged: Map<string, string>,
  limit: ReturnType<typeof limiter>,
  onProgress: CheckOptions['onProgress'],
): Promise<void> {
  let done = 0;
  await Promise.all(
    ids.map((id) =>
      limit(async () => {
        try {
          await repo.readBlob(id);
        } catch (error) {
          if (error instanceof CorruptBlobError) damaged.set(id, error.reason);
          else if (!(error instanceof MissingBlobError)) throw error;
        }
        onProgress?.(++done, ids.length);
      }),
    ),
  );
}

/** The config must still parse and name the same repository (it was read once, when opening). */
async function checkConfig(repo: RepositoryHandle): Promise<string | undefined> {
  try {
    const config = parseConfig(await readAll(await repo.store.get(CONFIG_KEY)), repo.location);
    return config.id === repo.id ? undefined : `config now names another repository (${config.id})`;
  } catch (error) {
    if (error instanceof RepositoryError || error instanceof BlobNotFoundError) return error.message;
    throw error;
  }
}

async function readTreeOrDamage(repo: RepositoryHandle, id: string, damaged: Map<string, string>) {
  try {
    return await repo.readTree(id);
  } catch (error) {
    if (error instanceof CorruptBlobError) damaged.set(id, error.reason);
    else if (error instanceof InvalidTreeError) damaged.set(id, `invalid tree: ${error.reason}`);
    else if (error instanceof MissingBlobError) damaged.set(id, 'listed but missing');
    else throw error;
    return undefined;
  }
}

interface Hit {
  id: string;
  /** Relative to the tree; ends in `/` when a tree itself is broken. */
  path: string;
}

/**
 * For each bad blob, the snapshot paths it breaks. Each tree's hits are computed once and shared by
 * every snapshot that contains it, so unchanged directories cost nothing extra.
 */
async function brokenPaths(
  repo: RepositoryHandle,
  snapshots: Snapshot[],
  bad: Set<string>,
  limit: <T>(task: () => Promise<T>) => Promise<T>,
): Promise<Map<string, BrokenPath[]>> {
  const memo = new Map<string, Promise<Hit[]>>();
  const hitsOf = (treeId: string): Promise<Hit[]> => {
    let pending = memo.get(treeId);
    if (!pending) {
      pending = (async () => {
        if (bad.has(treeId)) return [{ id: treeId, path: '' }];
        const tree = await limit(() => repo.readTree(treeId));
        const hits: Hit[] = [];
        for (const entry of tree.entries) {
          for (const chunk of new Set(entry.chunks ?? []))
            if (bad.has(chunk)) hits.push({ id: chunk, path: entry.name });
          if (entry.subtree) {
            for (const hit of await hitsOf(entry.subtree))
              hits.push({ id: hit.id, path: `${entry.name}/${hit.path}` });
          }
        }
        return hits;
      })();
      memo.set(treeId, pending);
    }
    return pending;
  };
  const result = new Map<string, BrokenPath[]>();
  for (const snapshot of [...snapshots].sort((a, b) => a.id.localeCompare(b.id))) {
    for (const [source, treeId] of Object.entries(snapshot.trees).sort()) {
      for (const hit of await hitsOf(treeId)) {
        const list = result.get(hit.id) ?? [];
        list.push({ snapshot: snapshot.id, path: `${source}/${hit.path}` });
        result.set(hit.id, list);
      }
    }
  }
  return result;
}

/** Packs no readable index names. */
function unindexed(listing: IndexListing): string[] {
  const named = new Set([...listing.indexes.values()].flatMap((packs) => packs.map((p) => p.pack)));
  return [...listing.packs.keys()].filter((pack) => !named.has(pack)).sort();
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
