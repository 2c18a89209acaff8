import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Repository } from '../../src/vault/repository/index.ts';

/** Where a blob's stored bytes lie on disk: its own file under data/, or a range of a pack under packs/. */
export interface StoredBlob {
  id: string;
  file: string;
  offset: number;
  length: number;
}

/** Every blob of a repository on a local folder, loose or packed, as its index lists them. */
export async function storedBlobs(repo: Repository, root: string): Promise<StoredBlob[]> {
  const listing = await repo.index.reload();
  return [...listing.sizes].map(([id, size]) => {
    const where = listing.packed.get(id);
    if (where) return { id, file: packFile(root, where.pack), offset: where.offset, length: where.length };
    return { id, file: path.join(root, 'data', id.slice(0, 2), id), offset: 0, length: size };
  });
}

export async function storedBlob(repo: Repository, root: string, id: string): Promise<StoredBlob> {
  const found = (await storedBlobs(repo, root)).find((blob) => blob.id === id);
  if (!found) throw new Error(`The repository holds no blob ${id}.`);
  return found;
}

const packFile = (root: string, pack: string) => path.join(root, 'packs', pack.slice(0, 2), pack);

/** Flips one byte of a blob past its header (`at`: 0..1 of the rest), so it no longer authenticates or hashes. */
export function flipStoredByte(blob: StoredBlob, at = 0.5): void {
  const bytes = readFileSync(blob.file);
  const i = blob.offset + Math.min(blob.length - 1, 8 + Math.floor(at * (blob.length - 8)));
  bytes[i] = bytes[i]! ^ 0x20;
  writeFileSync(blob.file, bytes);
}
