import type { IndexListing } from './blob-index.ts';
import { DecodeError } from './codec.ts';
import { CorruptBlobError } from './errors.ts';
import { dataKey, indexKey, packKey, QUARANTINE_PREFIX, snapshotKey } from './format.ts';
import type { RepositoryHandle } from './handle.ts';
import { readAll } from './io.ts';
import { type IndexedPack, PackFormatError, parseTrailer, TRAILER_LENGTH_BYTES } from './pack-format.ts';
import { writeIndexFile } from './pack-writer.ts';

export interface Quarantined {
  key: string;
  to: string;
}

/**
 * Moves damaged blobs, snapshot records and index files under quarantine/<time>/, so the next backup stores that
 * content again instead of deduplicating against the damaged copy. A damaged blob in a pack takes the pack with
 * it, after every other blob of that pack that still verifies is stored again as its own file. Then every pack no
 * index names (its index was unreadable, or a backup stopped before writing it) is indexed from its own trailer.
 */
export async function quarantineDamaged(
  repo: RepositoryHandle,
  listing: IndexListing,
  damaged: Map<string, string>,
  damagedSnapshots: { id: string }[],
): Promise<Quarantined[]> {
  const keys = listing.unreadableIndexes.map((index) => indexKey(index.id));
  const packs = new Set<string>();
  for (const id of damaged.keys()) {
    const where = listing.packed.get(id);
    if (where) packs.add(where.pack);
    else keys.push(dataKey(id));
  }
  for (const pack of packs) {
    await salvagePack(repo, listing, pack, damaged);
    keys.push(packKey(pack));
  }
  keys.push(...damagedSnapshots.map((s) => snapshotKey(s.id)));
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const quarantined: Quarantined[] = [];
  for (const key of keys) {
    const to = `${QUARANTINE_PREFIX}${stamp}/${key}`;
    await quarantine(repo, key, to);
    quarantined.push({ key, to });
  }
  // After the unreadable index files are aside: a rebuilt index names the same packs, so it has the same name.
  // A crash before this leaves packs no index names; prune keeps them while anything is missing (pack-prune.ts).
  await reindexPacks(repo, listing);
  await repo.index.reload();
  return quarantined;
}

/** Stores every blob of a damaged pack that still verifies as its own durable file, before the pack moves aside. */
async function salvagePack(
  repo: RepositoryHandle,
  listing: IndexListing,
  pack: string,
  damaged: Map<string, string>,
): Promise<void> {
  for (const [id, where] of listing.packed) {
    if (where.pack !== pack || damaged.has(id)) continue;
    try {
      const stored = await repo.readStoredVerified(id);
      await repo.store.put(dataKey(id), stored, { size: stored.length });
    } catch (error) {
      if (!(error instanceof CorruptBlobError)) throw error;
      damaged.set(id, error.reason);
    }
  }
}

/** Writes an index file for every pack no readable index names, from the list each pack carries at its end. */
async function reindexPacks(repo: RepositoryHandle, listing: IndexListing): Promise<void> {
  const named = new Set([...listing.indexes.values()].flatMap((packs) => packs.map((p) => p.pack)));
  const found: IndexedPack[] = [];
  for (const [pack, size] of listing.packs) {
    if (named.has(pack)) continue;
    const blobs = await readTrailer(repo, pack, size).catch((error: unknown) => {
      if (error instanceof DecodeError) return undefined;
      throw error;
    });
    if (blobs) found.push({ pack, blobs });
  }
  if (found.length > 0) await writeIndexFile(repo, found);
}

/** The blobs a pack lists in its trailer (§13.2), authenticated for the pack's name; DecodeError otherwise. */
export async function readTrailer(repo: RepositoryHandle, pack: string, size: number) {
  const key = packKey(pack);
  if (size < TRAILER_LENGTH_BYTES) throw new DecodeError('shorter than a trailer');
  const length = (
    await repo.store.getRange(key, size - TRAILER_LENGTH_BYTES, TRAILER_LENGTH_BYTES)
  ).readUInt32LE(0);
  const start = size - TRAILER_LENGTH_BYTES - length;
  if (length === 0 || start < 0) throw new DecodeError('no trailer');
  const plaintext = await repo.decodeRecord(key, await repo.store.getRange(key, start, length));
  try {
    return parseTrailer(plaintext, start);
  } catch (error) {
    if (error instanceof PackFormatError) throw new DecodeError(`not a pack trailer: ${error.message}`);
    throw error;
  }
}

/**
 * Copies a key to `to`, verifies the copy byte for byte, then deletes the original: a crash in between leaves
 * both, never neither.
 */
async function quarantine(repo: RepositoryHandle, key: string, to: string): Promise<void> {
  const bytes = await readAll(await repo.store.get(key));
  await repo.store.put(to, bytes, { size: bytes.length });
  const copy = await readAll(await repo.store.get(to));
  if (!copy.equals(bytes))
    throw new Error(`The copy of ${key} in ${to} does not read back the same; ${key} was kept.`);
  await repo.store.delete(key);
}
