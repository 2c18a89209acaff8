import { BlobNotFoundError } from '../../blobstore/index.ts';
import { DECODE_LIMITS, DecodeError } from './codec.ts';
import { InvalidSnapshotError, SnapshotNotFoundError } from './errors.ts';
import { isId, snapshotKey } from './format.ts';
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
