import type { IndexListing } from './blob-index.ts';
import { dataKey, indexKey, packKey } from './format.ts';
import type { RepositoryHandle } from './handle.ts';
import type { IndexedPack, PackEntry } from './pack-format.ts';
import { indexGroups, PackWriter, writeIndexFile } from './pack-writer.ts';

export interface PruneResult {
  blobs: number;
  bytes: number;
  packsDeleted: number;
  packsRewritten: number;
}

/**
 * Deletes the blobs in `dead` (prune's job, under an exclusive lock): loose ones file by file; a pack whose
 * blobs are all dead is deleted whole, one that still holds live blobs is rewritten with only those, and packs
 * no index names (left by an interrupted backup) are deleted. The order keeps every live blob findable at every
 * step (§13.5): new packs and their index first, then an index of the packs kept, then the old index files, then
 * the old packs. A crash anywhere leaves at worst a duplicate or an unindexed pack, which the next prune removes.
 */
export async function pruneBlobs(
  repo: RepositoryHandle,
  listing: IndexListing,
  dead: ReadonlySet<string>,
  assertHeld: () => void,
  /** False while check finds blobs missing: they may be in a pack whose index is lost, which repair re-indexes. */
  deleteUnindexed = true,
): Promise<PruneResult> {
  const result: PruneResult = { blobs: 0, bytes: 0, packsDeleted: 0, packsRewritten: 0 };
  for (const id of dead) {
    const size = listing.sizes.get(id);
    if (size === undefined) continue;
    result.blobs++;
    result.bytes += size;
  }
  // Planned before any loose file goes: forgetting a blob also drops it from the listing's packed blobs.
  const plan = planPacks(listing, dead, deleteUnindexed);
  for (const id of dead) {
    if (!listing.loose.has(id)) continue;
    assertHeld();
    await repo.store.delete(dataKey(id));
    repo.index.forget(id);
  }
  if (listing.packs.size === 0 && listing.indexes.size === 0) return result;

  const fresh = new Set(await rewriteLive(repo, plan.rewrite, assertHeld));
  result.packsRewritten = plan.rewrite.length;
  // The packs kept are indexed anew before the old index files go: never a moment a live blob is unindexed.
  for (const group of indexGroups(plan.keep)) {
    assertHeld();
    fresh.add(await writeIndexFile(repo, group));
  }
  for (const id of listing.indexes.keys()) {
    if (fresh.has(id)) continue;
    assertHeld();
    await repo.store.delete(indexKey(id));
  }
  for (const pack of [...plan.remove, ...plan.rewrite.map((p) => p.pack)]) {
    assertHeld();
    await repo.store.delete(packKey(pack));
    result.packsDeleted++;
  }
  await repo.index.reload();
  return result;
}

interface PackPlan {
  /** Packs every live blob of which is read from them: indexed again as they are. */
  keep: IndexedPack[];
  /** Packs holding live blobs beside dead ones or duplicates: their live blobs move to new packs. */
  rewrite: Array<{ pack: string; live: PackEntry[] }>;
  /** Packs with no live blob, or named by no index (unless kept for repair). */
  remove: string[];
}

function planPacks(listing: IndexListing, dead: ReadonlySet<string>, deleteUnindexed: boolean): PackPlan {
  const entries = new Map<string, Map<string, PackEntry>>();
  for (const packs of listing.indexes.values()) {
    for (const { pack, blobs } of packs) {
      const byId = entries.get(pack) ?? new Map<string, PackEntry>();
      for (const blob of blobs) byId.set(blob.id, blob);
      entries.set(pack, byId);
    }
  }
  const plan: PackPlan = { keep: [], rewrite: [], remove: [] };
  for (const pack of listing.packs.keys()) {
    const indexed = entries.get(pack);
    if (!indexed && !deleteUnindexed) continue;
    const blobs = [...(indexed?.values() ?? [])];
    // A blob is live here when it is not dead and readers find it in this pack (not in a duplicate elsewhere).
    const live = blobs.filter((blob) => !dead.has(blob.id) && listing.packed.get(blob.id)?.pack === pack);
    if (live.length === 0) plan.remove.push(pack);
    else if (live.length === blobs.length) plan.keep.push({ pack, blobs: live });
    else plan.rewrite.push({ pack, live });
  }
  return plan;
}

/** Copies the live blobs of the packs to rewrite into new packs and indexes them; the index files' ids. */
async function rewriteLive(
  repo: RepositoryHandle,
  rewrite: PackPlan['rewrite'],
  assertHeld: () => void,
): Promise<string[]> {
  const indexIds: string[] = [];
  if (rewrite.length === 0) return indexIds;
  const writer = new PackWriter(
    repo,
    () => {},
    undefined,
    (id) => indexIds.push(id),
  );
  for (const { live } of rewrite) {
    for (const blob of live) {
      assertHeld();
      // Verified on the way: a damaged blob stops the prune (check --read-data --repair first) instead of moving on.
      await writer.add(blob.id, await repo.readStoredVerified(blob.id));
    }
  }
  await writer.flush();
  return indexIds;
}
