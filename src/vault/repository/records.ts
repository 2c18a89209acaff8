import { readAll } from '../../blobstore/index.ts';
import { authKeyId, tagRecord, untagRecord } from './auth.ts';
import { type Codec, DECODE_LIMITS, DecodeError } from './codec.ts';
import type { KeyMaterial } from './crypto.ts';
import { KeyRequiredError, WrongKeyError } from './errors.ts';
import { AUTHENTICATED_FORMAT_VERSION, CONFIG_KEY, type ConfigFile, snapshotKey } from './format.ts';
import type { RepositoryHandle } from './handle.ts';

/**
 * Records (snapshot records and deletion ledger entries) as stored: the frame of kind "snapshot", sealed with
 * the rest when the repository is encrypted, tagged under the repository key when it is not (auth.ts).
 * A record that is not authenticated for its own name is refused, so bytes not written by a key holder
 * never become a snapshot or a deletion.
 */

/** The key an unencrypted repository needs, checked against the one its config names. */
export function checkAuthKey(
  config: ConfigFile,
  keys: KeyMaterial | undefined,
  authKey: Buffer | undefined,
  location: string,
): Buffer | undefined {
  if (keys) return undefined;
  if (!authKey) throw new KeyRequiredError(location, !config.authentication);
  const given = authKeyId(authKey);
  if (config.authentication && config.authentication.keyId !== given) {
    throw new WrongKeyError(location, config.authentication.keyId, given);
  }
  return authKey;
}

export async function encodeRecord(
  codec: Codec,
  authKey: Buffer | undefined,
  name: string,
  plaintext: Buffer,
  limit: number = DECODE_LIMITS.snapshot,
): Promise<Buffer> {
  const frame = await codec.encode('snapshot', plaintext, undefined, limit);
  return authKey ? tagRecord(authKey, name, frame) : frame;
}

/** The plaintext of a record; DecodeError saying why it is refused. */
export async function decodeRecord(
  codec: Codec,
  authKey: Buffer | undefined,
  name: string,
  stored: Buffer,
  limit: number = DECODE_LIMITS.snapshot,
): Promise<Buffer> {
  let frame = stored;
  if (authKey) {
    const opened = untagRecord(authKey, name, stored);
    if (!opened)
      throw new DecodeError('not authenticated by the repository key: not written by a key holder');
    frame = opened;
  }
  const { kind, plaintext } = await codec.decode(frame, limit);
  // Snapshot records and ledger entries are never deduplicated with blobs: another kind was put here by hand.
  if (kind !== 'snapshot') throw new DecodeError(`a ${kind} blob where a record belongs`);
  return plaintext;
}

export interface UpgradeVouch {
  /** Snapshot ids this service's catalog records as taken by its own backups. */
  snapshots: ReadonlySet<string>;
  /** Rewrites the deletion ledger (from PostgreSQL, which knows every deletion) once tags are required. */
  rewriteLedger: () => Promise<void>;
}

export interface UpgradeResult {
  vouched: string[];
  /** Records written before the repository had a key that nothing here vouches for: they stay unverified. */
  unverified: string[];
}

/**
 * Brings a format-1 unencrypted repository to format 2: records the service vouches for (its catalog names
 * the snapshot, PostgreSQL the deletion) are tagged, then the config names the key. Others stay untagged, so
 * they read as unverified; nothing is deleted. Rerunnable: a crash before the config write redoes it.
 */
export async function upgradeRecords(
  repo: RepositoryHandle & { readonly config: ConfigFile },
  authKey: Buffer,
  vouch: UpgradeVouch,
): Promise<UpgradeResult> {
  const result: UpgradeResult = { vouched: [], unverified: [] };
  for (const id of await repo.listSnapshots()) {
    const name = snapshotKey(id);
    const stored = await readAll(await repo.store.get(name));
    if (untagRecord(authKey, name, stored)) continue;
    let plaintext: Buffer | undefined;
    try {
      const decoded = await repo.codec.decode(stored, DECODE_LIMITS.snapshot);
      if (decoded.kind === 'snapshot' && repo.codec.idOf(decoded.plaintext) === id)
        plaintext = decoded.plaintext;
    } catch {
      // Damaged: check reports it.
    }
    if (!plaintext || !vouch.snapshots.has(id)) {
      result.unverified.push(id);
      continue;
    }
    const bytes = tagRecord(authKey, name, stored);
    await repo.store.put(name, bytes, { size: bytes.length });
    result.vouched.push(id);
  }
  await vouch.rewriteLedger();
  const config: ConfigFile = {
    ...repo.config,
    version: AUTHENTICATED_FORMAT_VERSION,
    authentication: { algorithm: 'hmac-sha256', keyId: authKeyId(authKey) },
  };
  const bytes = Buffer.from(`${JSON.stringify(config, null, 2)}\n`);
  await repo.store.put(CONFIG_KEY, bytes, { size: bytes.length });
  return result;
}
