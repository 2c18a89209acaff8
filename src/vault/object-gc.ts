import path from 'node:path';
import type { Logger } from 'pino';
import type { BlobInfo, BlobStore } from '../blobstore/blobstore.ts';
import { FileBlobStore } from '../blobstore/file.ts';
import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import { pathsInUse, type Removed, removeIdleEntries } from '../lib/leftovers.ts';
import {
  type AfterDelete,
  indexedObjects,
  keysWithRows,
  lastRestore,
  parseObjectKey,
  purgeOrphan,
  purgeTombstoned,
  recordLeftovers,
  tombstonedBefore,
} from '../objects/purge.ts';
import { type Repository, RepositoryNotFoundError } from './repository/index.ts';
import { DEFAULT_STALE_AFTER_MS, isStale, readLocks } from './repository/locks.ts';
import { listBaseBackups } from './repository/wal-records.ts';
import { databaseMarked } from './restore-markers.ts';
import { localTarget, openRepository, resolveTargets } from './targets.ts';

/**
 * The collector (I3). A tombstoned object's bytes leave the object store only when no restorable database state
 * can refer to it:
 * - no snapshot retained on any target holds its key in its objects tree, and
 * - it was tombstoned before the earliest moment a point-in-time restore can reach: the start of the window
 *   (BACKUP_PITR_WINDOW), or the oldest base backup on any target when that is older (prune keeps the one that
 *   starts before the window). A database restored to a later moment has the row tombstoned already.
 * When a target cannot be read, nothing is removed from the object store that run. Orphans (blobs no row names)
 * follow the same rule and wait the grace period, so an upload whose row is about to commit keeps its bytes.
 */

export interface CollectOptions {
  config: Config;
  sql: Sql;
  /** The database `sql` reaches: a restore into it in progress stops object collection. */
  databaseUrl: string;
  objects: BlobStore;
  /** Blobs and leftovers younger than this are never collected. */
  graceSeconds: number;
  now?: Date;
  logger?: Logger;
  /** Called between deleting a blob and committing its record (tests stop a real process there). */
  afterDelete?: AfterDelete;
}

export interface CollectReport {
  /** Tombstoned before this moment and in no retained snapshot: the bytes may go. */
  cutoff: string | null;
  /** Why the object store was left alone this run, when it was. */
  skipped: string | null;
  tombstoned: { removed: number; bytes: number; keptBySnapshots: number };
  orphans: { removed: number; bytes: number };
  leftovers: { removed: number; bytes: number };
  keys: string[];
}

/** The object store is left alone this run, for the reason given. */
class StoreLeftAlone extends Error {}

const BATCH = 500;
/** A run's share of orphans: a store full of them (a lost database) is worked through a run at a time. */
const MAX_ORPHANS = 10_000;

/** What restorable states can still need: every object key of every retained snapshot, and the oldest base backup. */
async function retainedState(config: Config): Promise<{ keys: Set<string>; oldestBase: Date | undefined }> {
  const keys = new Set<string>();
  let oldestBase: Date | undefined;
  for (const target of resolveTargets(config)) {
    let repo: Repository;
    try {
      repo = await openRepository(target, config);
    } catch (error) {
      // A target never written to holds nothing anyone can restore.
      if (error instanceof RepositoryNotFoundError) continue;
      throw new StoreLeftAlone(`target ${target.name} could not be read (${(error as Error).message})`);
    }
    try {
      const seen = new Set<string>();
      for (const id of await repo.listSnapshots()) {
        const snapshot = await repo.loadSnapshot(id);
        if (snapshot.trees.objects) await collectKeys(repo, snapshot.trees.objects, '', keys, seen);
      }
      const { backups, unreadable } = await listBaseBackups(repo);
      if (unreadable.length) throw new Error(`base backup records ${unreadable.join(', ')} do not read`);
      for (const base of backups) {
        const times = [base.startedAt, base.time].map((t) => Date.parse(t)).filter(Number.isFinite);
        if (times.length === 0) throw new Error(`base backup ${base.id} has no valid time`);
        const started = new Date(Math.min(...times));
        if (!oldestBase || started < oldestBase) oldestBase = started;
      }
    } catch (error) {
      throw new StoreLeftAlone(`target ${target.name} could not be read (${(error as Error).message})`);
    }
  }
  return { keys, oldestBase };
}

/** A backup, check or prune holds the local repository (or it cannot be read, which counts as held). */
async function localVaultBusy(config: Config): Promise<boolean> {
  try {
    const repo = await openRepository(localTarget(config), config);
    return (await readLocks(repo)).some((lock) => !isStale(lock, DEFAULT_STALE_AFTER_MS));
  } catch (error) {
    return !(error instanceof RepositoryNotFoundError);
  }
}

async function collectKeys(
  repo: Repository,
  treeId: string,
  prefix: string,
  out: Set<string>,
  seen: Set<string>,
): Promise<void> {
  // The same tree under the same path lists the same keys: snapshots share most of theirs.
  if (seen.has(`${prefix}\0${treeId}`)) return;
  seen.add(`${prefix}\0${treeId}`);
  for (const entry of (await repo.readTree(treeId)).entries) {
    const full = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.type === 'dir' && entry.subtree) await collectKeys(repo, entry.subtree, full, out, seen);
    else if (entry.type === 'file') out.add(full);
  }
}

/** One collection: tombstoned bytes and orphans (when the vault could be read), then local leftovers. */
export async function collectGarbage(options: CollectOptions): Promise<CollectReport> {
  const now = options.now ?? new Date();
  const report: CollectReport = {
    cutoff: null,
    skipped: null,
    tombstoned: { removed: 0, bytes: 0, keptBySnapshots: 0 },
    orphans: { removed: 0, bytes: 0 },
    leftovers: { removed: 0, bytes: 0 },
    keys: [],
  };
  try {
    if (await databaseMarked(options.databaseUrl)) {
      throw new StoreLeftAlone('a restore into this database is in progress');
    }
    // The vault is read only when something could go: most runs find nothing due and cost two queries and a listing.
    const windowStart = new Date(now.getTime() - options.config.backup.pitrWindowSeconds * 1000);
    const due = (await tombstonedBefore(options.sql, windowStart, 1)).length > 0;
    const orphans = await orphanCandidates(options, now);
    if (due || orphans.length) {
      const state = await retainedState(options.config);
      const cutoff = state.oldestBase && state.oldestBase < windowStart ? state.oldestBase : windowStart;
      report.cutoff = cutoff.toISOString();
      if (due) await purgeTombstones(options, cutoff, state.keys, report);
      await purgeOrphans(options, cutoff, state.keys, orphans, report);
    }
  } catch (error) {
    if (!(error instanceof StoreLeftAlone)) throw error;
    report.skipped = `${error.message}: nothing was removed from the object store`;
  }
  const busy = await localVaultBusy(options.config);
  removeLeftovers(options, now, busy, report);
  await recordLeftovers(options.sql, report.leftovers.removed, report.leftovers.bytes);
  const log = options.logger;
  if (report.skipped) log?.warn({ reason: report.skipped }, 'object collection skipped');
  const { keys, ...counts } = report;
  if (report.tombstoned.removed || report.orphans.removed || report.leftovers.removed) {
    log?.info(counts, 'collector removed bytes no restorable state needs');
  }
  if (keys.length) log?.debug({ keys }, 'collector removed these keys');
  return report;
}

async function purgeTombstones(
  options: CollectOptions,
  cutoff: Date,
  retained: Set<string>,
  report: CollectReport,
): Promise<void> {
  const kept = new Set<string>();
  for (;;) {
    const batch = (await tombstonedBefore(options.sql, cutoff, BATCH + kept.size)).filter(
      (row) => !kept.has(row.key),
    );
    if (batch.length === 0) return;
    for (const row of batch) {
      if (retained.has(row.key)) {
        kept.add(row.key);
        report.tombstoned.keptBySnapshots++;
        continue;
      }
      const bytes = await purgeTombstoned(options.sql, options.objects, row.key, cutoff, options.afterDelete);
      // Undefined: brought back or taken by another collector; either way not to be tried again this run.
      if (bytes === undefined) kept.add(row.key);
      else {
        report.tombstoned.removed++;
        report.tombstoned.bytes += bytes;
        report.keys.push(row.key);
      }
    }
  }
}

/** Blobs with an object key, older than the grace period, that no row names (at most MAX_ORPHANS a run). */
async function orphanCandidates(options: CollectOptions, now: Date): Promise<BlobInfo[]> {
  const youngest = now.getTime() - options.graceSeconds * 1000;
  const found: BlobInfo[] = [];
  let batch: BlobInfo[] = [];
  const flush = async () => {
    const known = await keysWithRows(
      options.sql,
      batch.map((info) => info.key),
    );
    found.push(...batch.filter((info) => !known.has(info.key)));
    batch = [];
  };
  for await (const info of options.objects.list()) {
    const modified = info.lastModified?.getTime();
    if (modified === undefined || modified > youngest || !parseObjectKey(info.key)) continue;
    batch.push(info);
    if (batch.length >= BATCH) await flush();
    if (found.length >= MAX_ORPHANS) break;
  }
  await flush();
  // Crashes leave a few orphans; a store full of them means this is not its database (a wrong DATABASE_URL, a
  // new empty one): removing them would destroy every object, so nothing is removed and the run says why.
  const indexed = await indexedObjects(options.sql);
  if (found.length > 0 && (indexed === 0 || (found.length > 100 && found.length > indexed / 100))) {
    throw new StoreLeftAlone(
      `${found.length} blobs in ${options.objects.location} have no row among the ${indexed} in the objects index, more than crashes leave: check that DATABASE_URL and STORAGE_URL belong together`,
    );
  }
  return found;
}

async function purgeOrphans(
  options: CollectOptions,
  cutoff: Date,
  retained: Set<string>,
  candidates: BlobInfo[],
  report: CollectReport,
): Promise<void> {
  // Blobs older than the last restore may be the replaced timeline's, which a restore can still reach.
  const restored = await lastRestore(options.sql);
  const epoch = restored && restored > cutoff ? restored.getTime() : Number.NEGATIVE_INFINITY;
  for (const info of candidates) {
    if (retained.has(info.key) || (info.lastModified?.getTime() ?? 0) <= epoch) continue;
    if (await purgeOrphan(options.sql, options.objects, info, options.afterDelete)) {
      report.orphans.removed++;
      report.orphans.bytes += info.size;
      report.keys.push(info.key);
    }
  }
}

/** Upload spools, the file store's temp folder and scratch folders of crashed backups, restores and drills. */
function removeLeftovers(options: CollectOptions, now: Date, vaultBusy: boolean, report: CollectReport) {
  const graceMs = options.graceSeconds * 1000;
  const inUse = pathsInUse();
  const tmp = path.join(options.config.dataDir, 'tmp');
  const removed: Removed[] = [];
  for (const spool of ['uploads', 'worker']) {
    removed.push(...removeIdleEntries(path.join(tmp, spool), graceMs, inUse, undefined, now.getTime()));
  }
  if (options.objects instanceof FileBlobStore) {
    removed.push(
      ...removeIdleEntries(path.join(options.objects.root, '.tmp'), graceMs, inUse, undefined, now.getTime()),
    );
  }
  // A backup between two of its parts touches no file for a while but holds a repository lock: wait for it.
  if (!vaultBusy) {
    const scratch = (name: string) => /^(backup|restore|drill)-/.test(name) || name === 'restore-to-moment';
    removed.push(...removeIdleEntries(tmp, graceMs, inUse, scratch, now.getTime()));
  }
  report.leftovers.removed = removed.length;
  report.leftovers.bytes = removed.reduce((sum, r) => sum + r.bytes, 0);
  if (removed.length) options.logger?.debug({ paths: removed.map((r) => r.path) }, 'leftovers removed');
}
