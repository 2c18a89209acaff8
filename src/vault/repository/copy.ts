import { readAll } from '../../blobstore/index.ts';
import { snapshotKey } from './format.ts';
import type { RepositoryHandle } from './handle.ts';
import { copyLedger } from './ledger.ts';

export interface CopyResult {
  blobsCopied: number;
  bytesCopied: number;
}

/**
 * Copies snapshots from one target's repository to another's as stored bytes: both repositories share
 * their keys (`like:` at init), so a blob's id and encoding are valid on both and nothing is decoded.
 * Blobs go first, each snapshot record last (I6); the destination's listing is read once.
 */
export async function copySnapshots(
  from: RepositoryHandle,
  to: RepositoryHandle,
  snapshotIds: string[],
): Promise<CopyResult> {
  if (from.blobId(Buffer.from('probe')) !== to.blobId(Buffer.from('probe'))) {
    throw new Error(
      `The repositories at ${from.location} and ${to.location} do not share keys; they cannot exchange blobs.`,
    );
  }
  const have = await to.index.load();
  to.packBlobs();
  const source = await from.index.load();
  const result: CopyResult = { blobsCopied: 0, bytesCopied: 0 };
  const existing = new Set(await to.listSnapshots());
  const wanted = snapshotIds.filter((id) => !existing.has(id));
  // Every blob the source holds that the destination lacks: a superset of what the snapshots need, but it
  // costs no tree walk and a later prune removes what no snapshot uses.
  const missing = [...source.keys()].filter((id) => !have.has(id));
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < missing.length) {
        const id = missing[next++]!;
        const bytes = await from.readStored(id);
        if (!(await to.putStored(id, bytes))) continue;
        result.blobsCopied++;
        result.bytesCopied += bytes.length;
      }
    }),
  );
  // Into pack files where the destination's format has them; durable and findable before any record (I6).
  await to.flushBlobs();
  // The deletion ledger travels with the snapshots (I3).
  await copyLedger(from, to);
  for (const id of wanted) {
    const bytes = await readAll(await from.store.get(snapshotKey(id)));
    await to.store.put(snapshotKey(id), bytes, { size: bytes.length });
  }
  return result;
}
