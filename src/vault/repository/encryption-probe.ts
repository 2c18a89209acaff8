import type { BlobStore } from '../../blobstore/index.ts';
import { KIND } from './codec.ts';
import { NONCE_BYTES, TAG_BYTES } from './crypto.ts';
import { DATA_PREFIX, INDEX_PREFIX, PACKS_PREFIX, SNAPSHOTS_PREFIX } from './format.ts';
import { readHead } from './io.ts';

/** Files looked at per prefix: enough to outvote one damaged file, few enough to keep open() quick. */
const PROBES = 4;
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/**
 * Whether the first bytes are the plaintext framing of the repository format: [kind, compression] then JSON
 * or a zstd frame for records, anything for raw data. A sealed file starts with a random nonce instead.
 */
function looksPlain(bytes: Buffer, record: boolean): boolean {
  const [kind, compression] = bytes;
  if (compression === 1) return ZSTD_MAGIC.every((b, i) => bytes[2 + i] === b) && kind! <= KIND.lock;
  if (compression !== 0) return false;
  return record ? kind === KIND.snapshot && bytes[2] === 0x7b : kind === KIND.data || kind === KIND.tree;
}

/**
 * Whether the repository holds encrypted files, judged without any key from a few snapshot records, data
 * blobs, index files and packs: asked when its config says it is not encrypted (or cannot say), since a config that lost its
 * encryption section must never lead to plaintext written beside encrypted data.
 */
export async function holdsEncryptedData(store: BlobStore): Promise<boolean> {
  let sealed = 0;
  let plain = 0;
  // Index files are records; a pack starts with its first blob.
  for (const prefix of [SNAPSHOTS_PREFIX, DATA_PREFIX, INDEX_PREFIX, PACKS_PREFIX]) {
    let looked = 0;
    for await (const info of store.list(prefix)) {
      if (looked++ >= PROBES) break;
      const head = await readHead(await store.get(info.key), 64).catch(() => undefined);
      // Too short to be sealed, or unreadable: no evidence either way.
      if (!head || head.length < NONCE_BYTES + TAG_BYTES + 2) continue;
      if (looksPlain(head, prefix === SNAPSHOTS_PREFIX || prefix === INDEX_PREFIX)) plain++;
      else sealed++;
    }
  }
  return sealed > 0 && sealed >= plain;
}
