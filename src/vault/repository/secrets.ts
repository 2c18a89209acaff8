import { randomBytes } from 'node:crypto';
import type { BlobStore } from '../../blobstore/index.ts';
import { AUTH_KEY_BYTES, authKeyId } from './auth.ts';
import { deriveKey, type KeyMaterial, newKeyMaterial, unwrapKeys, wrapKeys } from './crypto.ts';
import { NotEncryptedError, PasswordRequiredError, WrongPasswordError } from './errors.ts';
import {
  type ChunkerParams,
  type ConfigFile,
  DEFAULT_CHUNKER,
  DEFAULT_SCRYPT,
  DEFAULT_ZSTD_LEVEL,
  FORMAT_VERSION,
  type ScryptParams,
} from './format.ts';

export interface NewConfigOptions {
  /** Encrypts the repository; an empty string counts as no password. */
  password?: string;
  chunker?: Partial<Omit<ChunkerParams, 'seed'>>;
  /** Test suites lower this; production keeps the default. */
  kdf?: ScryptParams;
  zstdLevel?: number;
  /** Reuse another repository's chunker parameters and keys, so both name the same content alike. */
  like?: { params: ChunkerParams; keys: KeyMaterial | undefined };
  /** Unencrypted: the key records are tagged with (auth.ts); kept outside the repository, only named in it. */
  authKey?: Buffer;
}

/** A fresh config and, when encrypted, the key material it wraps. */
export async function newConfig(
  options: NewConfigOptions,
): Promise<{ config: ConfigFile; keys: KeyMaterial | undefined; chunker: ChunkerParams }> {
  const password = options.password || undefined;
  const like = options.like;
  if (like && Boolean(like.keys) !== Boolean(password)) {
    throw new TypeError(
      'A repository made like another must match its encryption: both with a password or neither.',
    );
  }
  const sizes = { ...DEFAULT_CHUNKER, ...options.chunker, ...(like ? like.params : {}) };
  const keys = password ? (like?.keys ?? newKeyMaterial()) : undefined;
  const seed = keys
    ? keys.chunkerSeed.toString('hex')
    : (like?.params.seed ?? randomBytes(32).toString('hex'));
  const chunker: ChunkerParams = {
    minSize: sizes.minSize,
    avgSize: sizes.avgSize,
    maxSize: sizes.maxSize,
    seed,
  };
  if (!password && options.authKey?.length !== AUTH_KEY_BYTES) {
    throw new TypeError('An unencrypted repository needs a 32-byte key to authenticate its records.');
  }
  const config: ConfigFile = {
    version: FORMAT_VERSION,
    id: randomBytes(32).toString('hex'),
    chunker: {
      algorithm: 'fastcdc',
      minSize: chunker.minSize,
      avgSize: chunker.avgSize,
      maxSize: chunker.maxSize,
      // Kept secret when encrypted: public boundaries would let anyone test for a known file by chunk sizes.
      ...(keys ? {} : { seed }),
    },
    compression: { algorithm: 'zstd', level: options.zstdLevel ?? DEFAULT_ZSTD_LEVEL },
    ...(password ? {} : { authentication: { algorithm: 'hmac-sha256', keyId: authKeyId(options.authKey!) } }),
  };
  if (password && keys) {
    const kdf = options.kdf ?? DEFAULT_SCRYPT;
    const salt = randomBytes(32);
    const wrapped = wrapKeys(await deriveKey(password, salt, kdf), keys);
    config.encryption = {
      cipher: 'aes-256-gcm',
      kdf: { algorithm: 'scrypt', ...kdf, salt: salt.toString('base64') },
      keys: wrapped.toString('base64'),
    };
  }
  return { config, keys, chunker };
}

/** Unlocks a parsed config with the password; every mismatch is one sentence naming the repository. */
export async function unlockConfig(
  config: ConfigFile,
  store: BlobStore,
  password: string | undefined,
): Promise<{ keys: KeyMaterial | undefined; chunker: ChunkerParams }> {
  const { minSize, avgSize, maxSize } = config.chunker;
  if (!config.encryption) {
    if (password) throw new NotEncryptedError(store.location);
    return { keys: undefined, chunker: { minSize, avgSize, maxSize, seed: config.chunker.seed! } };
  }
  if (!password) throw new PasswordRequiredError(store.location);
  const { kdf } = config.encryption;
  const wrappingKey = await deriveKey(password, Buffer.from(kdf.salt, 'base64'), kdf);
  const keys = unwrapKeys(wrappingKey, Buffer.from(config.encryption.keys, 'base64'));
  if (!keys) throw new WrongPasswordError(store.location);
  return { keys, chunker: { minSize, avgSize, maxSize, seed: keys.chunkerSeed.toString('hex') } };
}
