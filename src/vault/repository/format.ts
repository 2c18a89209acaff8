import { InvalidConfigError, UnsupportedFormatError } from './errors.ts';

/**
 * The newest format this code reads, and the one new repositories get. Bump it for any change an older reader
 * would misread. Version 2 added authenticated records to unencrypted repositories (`authentication`);
 * version 3 adds pack files (`packs/`, `index/`), in encrypted and unencrypted repositories alike.
 */
export const FORMAT_VERSION = 3;
/** What an unencrypted version-1 repository becomes when its records are first authenticated (records.ts). */
export const AUTHENTICATED_FORMAT_VERSION = 2;
/** From this version writers may put blobs in pack files; older repositories keep one file per blob. */
export const PACKED_FORMAT_VERSION = 3;

export const CONFIG_KEY = 'config';
export const DATA_PREFIX = 'data/';
export const SNAPSHOTS_PREFIX = 'snapshots/';
export const LOCKS_PREFIX = 'locks/';
/** Pack files: many blobs in one file (version 3). */
export const PACKS_PREFIX = 'packs/';
/** Index files: which blobs each pack holds, and where (version 3). */
export const INDEX_PREFIX = 'index/';
/** Damaged files moved aside by `check --repair`: never read as part of the repository, never deleted. */
export const QUARANTINE_PREFIX = 'quarantine/';

/** Blob, snapshot and lock ids: 32 bytes as lowercase hex. */
const ID = /^[0-9a-f]{64}$/;

export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID.test(value);
}

export function dataKey(id: string): string {
  return `${DATA_PREFIX}${id.slice(0, 2)}/${id}`;
}

/** The blob id a `data/` key names, or undefined for a key that is not a well-formed blob name. */
export function idOfDataKey(key: string): string | undefined {
  const id = key.slice(DATA_PREFIX.length + 3);
  return isId(id) && key === dataKey(id) ? id : undefined;
}

export const snapshotKey = (id: string) => `${SNAPSHOTS_PREFIX}${id}`;
export const packKey = (id: string) => `${PACKS_PREFIX}${id.slice(0, 2)}/${id}`;
export const indexKey = (id: string) => `${INDEX_PREFIX}${id}`;

/** The pack id a `packs/` key names, or undefined for a key that is not a well-formed pack name. */
export function idOfPackKey(key: string): string | undefined {
  const id = key.slice(PACKS_PREFIX.length + 3);
  return isId(id) && key === packKey(id) ? id : undefined;
}

/** The index id an `index/` key names, or undefined. */
export function idOfIndexKey(key: string): string | undefined {
  const id = key.slice(INDEX_PREFIX.length);
  return isId(id) ? id : undefined;
}
export const lockKey = (id: string) => `${LOCKS_PREFIX}${id}`;

export interface ChunkerParams {
  minSize: number;
  avgSize: number;
  maxSize: number;
  /** 32 bytes as hex: seeds the gear table, so chunk boundaries differ between repositories. */
  seed: string;
}

export const DEFAULT_CHUNKER = { minSize: 512 * 1024, avgSize: 1024 * 1024, maxSize: 8 * 1024 * 1024 };

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** About 0.15 s and 32 MiB here: slow for a password guesser, quick for an operator. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 32768, r: 8, p: 1 };

/**
 * zstd's level for new repositories. On 1 MiB chunks of this service's data, level 1 against 3: a dump's COPY
 * text 154 against 285-335 ms per 64 MB at a slightly better ratio (3.98 against 3.89), table files 3.46 against
 * 3.48, WAL 3.29 against 3.35, at 1.6-1.9x the speed.
 */
export const DEFAULT_ZSTD_LEVEL = 1;

export interface EncryptionConfig {
  cipher: 'aes-256-gcm';
  kdf: ScryptParams & { algorithm: 'scrypt'; salt: string };
  /** base64 of nonce ‖ AES-256-GCM(key material) ‖ tag under the scrypt-derived key. */
  keys: string;
}

/** The `config` file as stored (plain JSON: it must be readable before any key is known). */
export interface ConfigFile {
  version: number;
  id: string;
  /** In an encrypted repository the seed travels inside the wrapped key material instead. */
  chunker: { algorithm: 'fastcdc'; minSize: number; avgSize: number; maxSize: number; seed?: string };
  compression: { algorithm: 'zstd'; level: number };
  encryption?: EncryptionConfig;
  /** Unencrypted, format 2: records are tagged with the key this names (auth.ts); the key is not here. */
  authentication?: { algorithm: 'hmac-sha256'; keyId: string };
}

/** Parses and validates `config`; a newer version is refused before anything else is looked at. */
export function parseConfig(bytes: Buffer, location: string): ConfigFile {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new InvalidConfigError(location, 'not JSON');
  }
  const fail = (reason: string) => new InvalidConfigError(location, reason);
  if (!isObject(value)) throw fail('not a JSON object');
  const { version } = value;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1)
    throw fail('no format version');
  if (version > FORMAT_VERSION) throw new UnsupportedFormatError(location, version);
  if (!isId(value['id'])) throw fail('no repository id');

  const chunker = value['chunker'];
  if (!isObject(chunker) || chunker['algorithm'] !== 'fastcdc') throw fail('unknown chunker');
  const sizes = [chunker['minSize'], chunker['avgSize'], chunker['maxSize']];
  if (!sizes.every((n) => Number.isSafeInteger(n))) throw fail('chunker sizes are not integers');
  // The chunker's own limits (chunker.ts), checked here so that a damaged config is named as such.
  const [min, avg, max] = sizes as number[];
  if (
    !(min! >= 64 && min! < avg! && avg! < max! && max! <= 64 * 1024 * 1024 && avg! >= 256) ||
    (avg! & (avg! - 1)) !== 0
  )
    throw fail('chunker sizes out of range');
  if (chunker['seed'] !== undefined && !isId(chunker['seed'])) throw fail('bad chunker seed');

  const compression = value['compression'];
  if (
    !isObject(compression) ||
    compression['algorithm'] !== 'zstd' ||
    !Number.isInteger(compression['level'])
  )
    throw fail('unknown compression');

  const authentication = value['authentication'];
  if (
    authentication !== undefined &&
    (!isObject(authentication) ||
      authentication['algorithm'] !== 'hmac-sha256' ||
      !/^[0-9a-f]{16}$/.test(String(authentication['keyId'])))
  )
    throw fail('unknown authentication');
  const encryption = value['encryption'];
  if (encryption === undefined) {
    if (chunker['seed'] === undefined) throw fail('no chunker seed');
  } else {
    if (!isObject(encryption) || encryption['cipher'] !== 'aes-256-gcm') throw fail('unknown cipher');
    const kdf = encryption['kdf'];
    if (!isObject(kdf) || kdf['algorithm'] !== 'scrypt') throw fail('unknown key derivation');
    if (typeof kdf['salt'] !== 'string' || typeof encryption['keys'] !== 'string')
      throw fail('no key material');
    checkScrypt(kdf, fail);
  }
  return value as unknown as ConfigFile;
}

/** Bounds the parameters a config may ask for, so a damaged config cannot make open() eat all memory. */
function checkScrypt(kdf: Record<string, unknown>, fail: (reason: string) => Error): void {
  const { N, r, p } = kdf;
  const ok =
    Number.isInteger(N) &&
    Number.isInteger(r) &&
    Number.isInteger(p) &&
    (N as number) >= 1024 &&
    (N as number) <= 2 ** 20 &&
    ((N as number) & ((N as number) - 1)) === 0 &&
    (r as number) >= 1 &&
    (r as number) <= 32 &&
    (p as number) >= 1 &&
    (p as number) <= 16;
  if (!ok) throw fail('scrypt parameters out of range');
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
