import { isId, isObject } from './format.ts';

/** Where one blob's stored bytes lie in its pack. */
export interface PackEntry {
  id: string;
  offset: number;
  length: number;
}

/** One pack and the blobs it holds, in the order they were written. */
export interface IndexedPack {
  pack: string;
  blobs: PackEntry[];
}

/** Bytes of the little-endian length that ends every pack: the length of the trailer before it. */
export const TRAILER_LENGTH_BYTES = 4;

/** Packs are cut once they hold this many stored bytes (a blob is never split across packs). */
export const PACK_TARGET_BYTES = 8 * 1024 * 1024;

/** An index file names at most this many blobs, so that it stays well below what a record may decode to. */
export const INDEX_MAX_BLOBS = 60_000;

export class PackFormatError extends Error {
  override name = 'PackFormatError';
}

/** The plaintext of an index file (§13.3): every pack it names with its blobs. */
export function encodeIndex(packs: readonly IndexedPack[]): Buffer {
  return Buffer.from(
    JSON.stringify({ packs: packs.map((p) => ({ pack: p.pack, blobs: p.blobs.map(row) })) }),
  );
}

/** The plaintext of a pack's trailer (§13.2): the blobs of this pack only. */
export function encodeTrailer(blobs: readonly PackEntry[]): Buffer {
  return Buffer.from(JSON.stringify({ blobs: blobs.map(row) }));
}

const row = (entry: PackEntry) => [entry.id, entry.offset, entry.length];

/** An index file's packs, every field checked; PackFormatError saying what is wrong. */
export function parseIndex(plaintext: Buffer): IndexedPack[] {
  const value = parseJson(plaintext);
  if (!isObject(value) || !Array.isArray(value['packs'])) throw new PackFormatError('no list of packs');
  return value['packs'].map((pack: unknown) => {
    if (!isObject(pack) || !isId(pack['pack'])) throw new PackFormatError('a pack without an id');
    return { pack: pack['pack'], blobs: parseRows(pack['blobs']) };
  });
}

/** A trailer's blobs, every field checked, each lying before `end` (where the trailer starts). */
export function parseTrailer(plaintext: Buffer, end: number): PackEntry[] {
  const value = parseJson(plaintext);
  if (!isObject(value)) throw new PackFormatError('not an object');
  const blobs = parseRows(value['blobs']);
  for (const blob of blobs) {
    if (blob.offset + blob.length > end) throw new PackFormatError(`blob ${blob.id} lies past the trailer`);
  }
  return blobs;
}

function parseRows(rows: unknown): PackEntry[] {
  if (!Array.isArray(rows)) throw new PackFormatError('no list of blobs');
  return rows.map((entry: unknown) => {
    if (!Array.isArray(entry) || entry.length !== 3)
      throw new PackFormatError('a blob entry is not [id, offset, length]');
    const [id, offset, length] = entry as unknown[];
    if (!isId(id)) throw new PackFormatError('a blob entry without an id');
    if (
      !Number.isSafeInteger(offset) ||
      (offset as number) < 0 ||
      !Number.isSafeInteger(length) ||
      (length as number) < 1
    )
      throw new PackFormatError(`blob ${id} has no valid offset and length`);
    return { id, offset: offset as number, length: length as number };
  });
}

function parseJson(plaintext: Buffer): unknown {
  try {
    return JSON.parse(plaintext.toString('utf8'));
  } catch {
    throw new PackFormatError('not JSON');
  }
}
