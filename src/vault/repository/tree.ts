import { canonicalJson } from './canonical-json.ts';
import { isId, isObject } from './format.ts';

export type EntryType = 'file' | 'dir' | 'symlink';

/** One entry of a directory. A tree blob is `{"entries": [...]}` in canonical JSON. */
export interface TreeEntry {
  name: string;
  type: EntryType;
  /** Permission bits (st_mode & 0o7777). */
  mode: number;
  mtimeMs: number;
  /** Bytes of the file; 0 for directories and symlinks. */
  size: number;
  /** Only for telling an unchanged file from a replaced one on the next backup. */
  inode?: number;
  /** Files: the data blobs whose plaintexts, concatenated, are the content. */
  chunks?: string[];
  /** Directories: the tree blob of its content. */
  subtree?: string;
  /** Symlinks: the link text, never followed when backing up. */
  target?: string;
}

export interface Tree {
  entries: TreeEntry[];
}

/** The canonical bytes of a tree: entries sorted by name, keys in sorted order, absent fields left out. */
export function encodeTree(entries: readonly TreeEntry[]): Buffer {
  const sorted = entries.map(checkEntry).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.name === sorted[i - 1]!.name)
      throw new TypeError(`Duplicate tree entry ${sorted[i]!.name}.`);
  }
  return Buffer.from(canonicalJson({ entries: sorted }));
}

/** Parses and validates a tree; throws TypeError with the reason when anything is off. */
export function decodeTree(plaintext: Buffer): Tree {
  let value: unknown;
  try {
    value = JSON.parse(plaintext.toString('utf8'));
  } catch {
    throw new TypeError('not JSON');
  }
  if (!isObject(value) || !Array.isArray(value['entries'])) throw new TypeError('no entries list');
  const entries = value['entries'].map(checkEntry);
  const names = new Set<string>();
  for (const entry of entries) {
    if (names.has(entry.name)) throw new TypeError(`duplicate entry ${JSON.stringify(entry.name)}`);
    names.add(entry.name);
  }
  return { entries };
}

/**
 * Refuses what a restore must never write: a name that is a path (`/`), `.` or `..`, empty, or has a
 * NUL; a type without the field it needs. Returns the entry with only the known fields, in order.
 */
export function checkEntry(raw: unknown): TreeEntry {
  if (!isObject(raw)) throw new TypeError('an entry is not an object');
  const { name, type, mode, mtimeMs, size, inode, chunks, subtree, target } = raw;
  if (typeof name !== 'string' || !isSafeName(name))
    throw new TypeError(`unsafe entry name ${JSON.stringify(name)}`);
  const where = `entry ${JSON.stringify(name)}`;
  if (type !== 'file' && type !== 'dir' && type !== 'symlink')
    throw new TypeError(`${where} has unknown type`);
  if (!Number.isInteger(mode) || (mode as number) < 0 || (mode as number) > 0o7777)
    throw new TypeError(`${where} has a bad mode`);
  if (typeof mtimeMs !== 'number' || !Number.isFinite(mtimeMs))
    throw new TypeError(`${where} has a bad mtime`);
  if (!Number.isSafeInteger(size) || (size as number) < 0) throw new TypeError(`${where} has a bad size`);
  if (inode !== undefined && (!Number.isSafeInteger(inode) || (inode as number) < 0))
    throw new TypeError(`${where} has a bad inode`);
  const entry: TreeEntry = { name, type, mode: mode as number, mtimeMs, size: size as number };
  if (inode !== undefined) entry.inode = inode as number;
  if (type === 'file') {
    if (!Array.isArray(chunks) || !chunks.every(isId)) throw new TypeError(`${where} has bad chunk ids`);
    entry.chunks = [...chunks];
  } else if (type === 'dir') {
    if (!isId(subtree)) throw new TypeError(`${where} has no subtree id`);
    entry.subtree = subtree;
  } else {
    if (typeof target !== 'string' || target.length === 0 || target.includes('\0'))
      throw new TypeError(`${where} has no link target`);
    entry.target = target;
  }
  return entry;
}

export function isSafeName(name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}
