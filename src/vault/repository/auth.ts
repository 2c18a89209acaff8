import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Records of an unencrypted repository (snapshot records, deletion ledger entries) end in a tag: HMAC-SHA-256
 * under the repository key over the file's name and bytes. The key is kept outside the repository
 * (BACKUP_KEY, or DATA_DIR/secrets/backup-key), so whoever can only write the repository cannot make a tag.
 * Trees and chunks are named by SHA-256 and reached only from tagged records, so they are authenticated
 * by name. Encrypted repositories need no tag: AES-GCM under their key authenticates every file already.
 */

export const RECORD_TAG_BYTES = 32;
export const AUTH_KEY_BYTES = 32;

function tag(key: Buffer, name: string, body: Buffer): Buffer {
  return createHmac('sha256', key).update(`trendgen record\0${name}\0`).update(body).digest();
}

/** The stored bytes of a record named `name`: its frame, then the tag. */
export function tagRecord(key: Buffer, name: string, frame: Buffer): Buffer {
  return Buffer.concat([frame, tag(key, name, frame)]);
}

/** The frame of a tagged record, or undefined when the tag was not made with this key for this name. */
export function untagRecord(key: Buffer, name: string, stored: Buffer): Buffer | undefined {
  if (stored.length < RECORD_TAG_BYTES) return undefined;
  const frame = stored.subarray(0, stored.length - RECORD_TAG_BYTES);
  const expected = tag(key, name, frame);
  return timingSafeEqual(expected, stored.subarray(stored.length - RECORD_TAG_BYTES)) ? frame : undefined;
}

/** Names a key without revealing it, so a config can say which key its records need. */
export function authKeyId(key: Buffer): string {
  return createHmac('sha256', key).update('trendgen repository key id').digest('hex').slice(0, 16);
}
