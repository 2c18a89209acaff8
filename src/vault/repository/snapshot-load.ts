import { BlobNotFoundError, type BlobStore } from '../../blobstore/index.ts';
import { DECODE_LIMITS, DecodeError } from './codec.ts';
import { InvalidSnapshotError, SnapshotNotFoundError } from './errors.ts';
import { isId, SNAPSHOTS_PREFIX, snapshotKey } from './format.ts';
import type { RepositoryHandle } from './handle.ts';
import { readAtMost } from './io.ts';
import { checkSnapshotRecord, type Snapshot } from './snapshot.ts';

/**
 * A verified snapshot record: read no further than any record can be, authenticated for its name, named by
 * its content, and well formed; otherwise InvalidSnapshotError saying which and why (I7).
 */
export async function loadSnapshotRecord(repo: RepositoryHandle, id: string): Promise<Snapshot> {
  if (!isId(id)) throw new TypeError(`Not a snapshot id: ${JSON.stringify(id)}.`);
  let stored: Buffer | undefined;
  try {
    stored = await readAtMost(await repo.store.get(snapshotKey(id)), DECODE_LIMITS.snapshot + 64);
  } catch (error) {
    if (error instanceof BlobNotFoundError) throw new SnapshotNotFoundError(id, repo.location);
    throw error;
  }
  const fail = (reason: string) => new InvalidSnapshotError(id, repo.location, reason);
  if (!stored) throw fail(`larger than ${DECODE_LIMITS.snapshot} bytes, more than any snapshot record`);
  let plaintext: Buffer;
  try {
    plaintext = await repo.decodeRecord(snapshotKey(id), stored, DECODE_LIMITS.snapshot);
  } catch (error) {
    if (error instanceof DecodeError) throw fail(error.message);
    throw error;
  }
  if (repo.codec.idOf(plaintext) !== id) throw fail('content does not match its id');
  try {
    return { ...checkSnapshotRecord(JSON.parse(plaintext.toString('utf8'))), id };
  } catch (error) {
    throw fail(error instanceof SyntaxError ? 'not JSON' : (error as Error).message);
  }
}

/** Snapshot ids with when their file was last written, as the target lists them, sorted by id. */
export async function listSnapshotFiles(
  store: BlobStore,
): Promise<Array<{ id: string; modified: Date | undefined }>> {
  const files: Array<{ id: string; modified: Date | undefined }> = [];
  for await (const info of store.list(SNAPSHOTS_PREFIX)) {
    const id = info.key.slice(SNAPSHOTS_PREFIX.length);
    if (isId(id)) files.push({ id, modified: info.lastModified });
  }
  return files.sort((a, b) => (a.id < b.id ? -1 : 1));
}
