import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FileBlobStore } from '../../../src/blobstore/index.ts';
import { type InitOptions, Repository } from '../../../src/vault/repository/index.ts';
import { tempDir } from '../../support/temp.ts';

/** The smallest scrypt the format accepts: the tests exercise the scheme, not its cost. */
export const FAST_KDF = { N: 1024, r: 8, p: 1 };
/** Small chunks so that a few hundred KiB already make several. */
export const SMALL_CHUNKS = { minSize: 16 * 1024, avgSize: 64 * 1024, maxSize: 256 * 1024 };
export const PASSWORD = 'correct horse battery staple';
/** The key an unencrypted test repository authenticates its records with (kept outside it, as in production). */
export const AUTH_KEY = Buffer.alloc(32, 7);

export interface TempRepo {
  repo: Repository;
  store: FileBlobStore;
  root: string;
  /** A scratch folder next to the repository, for sources and restores. */
  work: string;
  remove(): void;
}

export async function tempRepo(options: InitOptions & { encrypted?: boolean } = {}): Promise<TempRepo> {
  const temp = tempDir('vault-repo');
  const root = path.join(temp.dir, 'repo');
  const store = new FileBlobStore(root);
  const { encrypted, ...init } = options;
  const repo = await Repository.init(store, {
    kdf: FAST_KDF,
    chunker: SMALL_CHUNKS,
    ...(encrypted ? { password: PASSWORD } : { authKey: AUTH_KEY }),
    ...init,
  });
  return { repo, store, root, work: temp.dir, remove: temp.remove };
}

/** Every regular file under dir, as paths relative to it. */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.relative(dir, path.join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

/** Flips one byte in the middle of a file (what a bad disk sector does). */
export async function flipByte(file: string): Promise<void> {
  const bytes = await readFile(file);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = bytes[at]! ^ 0x5a;
  await writeFile(file, bytes);
}

export function blobFile(root: string, id: string): string {
  return path.join(root, 'data', id.slice(0, 2), id);
}

export async function fileSize(file: string): Promise<number> {
  return (await stat(file)).size;
}

/** Bytes that compress well (text-like) or not at all (random). */
export function textBytes(size: number): Buffer {
  const line = Buffer.from("SELECT * FROM generations WHERE trend = $1 AND status = 'succeeded';\n");
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; at += line.length) line.copy(out, at);
  return out;
}

export const randomData = (size: number) => randomBytes(size);

/** SHA-256 hex: comparing digests keeps vitest from diffing large buffers byte by byte. */
export function digest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
