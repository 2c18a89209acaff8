import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  randomBytes,
  scrypt,
  webcrypto,
} from 'node:crypto';
import type { ScryptParams } from './format.ts';

export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
const KEY_BYTES = 32;
/** encryption key ‖ MAC key ‖ chunker seed. */
const KEY_MATERIAL_BYTES = 3 * KEY_BYTES;

/** The secrets of an encrypted repository, wrapped in its config under the password. */
export interface KeyMaterial {
  encryptionKey: Buffer;
  macKey: Buffer;
  chunkerSeed: Buffer;
}

export function newKeyMaterial(): KeyMaterial {
  return {
    encryptionKey: randomBytes(KEY_BYTES),
    macKey: randomBytes(KEY_BYTES),
    chunkerSeed: randomBytes(32),
  };
}

export function deriveKey(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Node refuses anything above 32 MiB by default, which is exactly what N=2^15, r=8 needs.
    const maxmem = 256 * params.N * params.r;
    scrypt(
      password.normalize('NFC'),
      salt,
      KEY_BYTES,
      { N: params.N, r: params.r, p: params.p, maxmem },
      (error, key) => (error ? reject(error) : resolve(key)),
    );
  });
}

/**
 * nonce ‖ ciphertext ‖ tag, with a fresh random nonce per call. Several parts are sealed as their concatenation
 * (the cipher streams), without copying them into one buffer first.
 */
export function seal(key: Buffer, plaintext: Buffer | Buffer[]): Buffer {
  return Buffer.concat(sealParts(key, Array.isArray(plaintext) ? plaintext : [plaintext]));
}

/** seal's bytes as the pieces the cipher gave, for a writer that copies them on anyway (into a pack). */
export function sealParts(key: Buffer, plaintext: Buffer[]): Buffer[] {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const body = plaintext.map((part) => cipher.update(part));
  const rest = cipher.final();
  return [nonce, ...body, rest, cipher.getAuthTag()];
}

/** The plaintext, or undefined when the bytes were not sealed with this key or were altered since. */
export function unseal(key: Buffer, sealed: Buffer): Buffer | undefined {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) return undefined;
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE_BYTES));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const body = decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
  let rest: Buffer;
  try {
    rest = decipher.final();
  } catch {
    return undefined;
  }
  // GCM's final() checks the tag and gives no bytes: the plaintext is update's output, not a copy of it.
  return rest.length === 0 ? body : Buffer.concat([body, rest]);
}

export function wrapKeys(wrappingKey: Buffer, keys: KeyMaterial): Buffer {
  return seal(wrappingKey, Buffer.concat([keys.encryptionKey, keys.macKey, keys.chunkerSeed]));
}

/** Undefined when the wrapping key (that is, the password) is wrong. */
export function unwrapKeys(wrappingKey: Buffer, wrapped: Buffer): KeyMaterial | undefined {
  const plain = unseal(wrappingKey, wrapped);
  if (!plain || plain.length !== KEY_MATERIAL_BYTES) return undefined;
  return {
    encryptionKey: plain.subarray(0, KEY_BYTES),
    macKey: plain.subarray(KEY_BYTES, 2 * KEY_BYTES),
    chunkerSeed: plain.subarray(2 * KEY_BYTES),
  };
}

/** SHA-256, or HMAC-SHA-256 under the MAC key when encrypted, so names reveal nothing of content. */
export function contentId(macKey: Buffer | undefined, plaintext: Buffer): string {
  const hash = macKey ? createHmac('sha256', macKey) : createHash('sha256');
  return hash.update(plaintext).digest('hex');
}

const macKeys = new WeakMap<Buffer, Promise<webcrypto.CryptoKey>>();

/**
 * contentId computed on libuv's thread pool (WebCrypto runs its jobs there), so a restore's main thread is
 * free to parse and write while the next blobs are verified.
 */
export async function contentIdOffThread(macKey: Buffer | undefined, plaintext: Buffer): Promise<string> {
  if (!macKey) return Buffer.from(await webcrypto.subtle.digest('SHA-256', plaintext)).toString('hex');
  let key = macKeys.get(macKey);
  if (!key) {
    key = webcrypto.subtle.importKey('raw', macKey, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    macKeys.set(macKey, key);
  }
  return Buffer.from(await webcrypto.subtle.sign('HMAC', await key, plaintext)).toString('hex');
}
