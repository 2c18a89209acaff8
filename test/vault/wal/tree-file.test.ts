import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { Repository } from '../../../src/vault/repository/index.ts';
import {
  GROWING_TAIL_PIECE,
  readTreeFile,
  type StableChunks,
  storeAsTree,
  storeGrowingFile,
} from '../../../src/vault/wal/tree-file.ts';
import { tempDir } from '../../support/temp.ts';

const temp = tempDir('tree-file');
afterAll(() => temp.remove());

async function* once(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes;
}

/** The bytes of every file under `dir`. */
function treeBytes(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .reduce((sum, entry) => sum + statSync(path.join(entry.parentPath, entry.name)).size, 0);
}

async function readAll(repo: Repository, tree: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of readTreeFile(repo, tree)) parts.push(part);
  return Buffer.concat(parts);
}

describe('storeGrowingFile: a partial WAL segment recorded as it grows', () => {
  it('gives the chunks storing the whole file again gives, but the unfinished last one, in pieces; reads only what follows its stable chunks', async () => {
    const repo = await Repository.init(new FileBlobStore(path.join(temp.dir, 'same')), {
      authKey: randomBytes(32),
    });
    const file = randomBytes(12 * 1024 * 1024);
    let stable: StableChunks | undefined;
    let read = 0;
    for (const end of [300_000, 2_500_000, 2_600_000, 7_000_000, 7_000_001, file.length]) {
      const from = stable?.bytes ?? 0;
      read += end - from;
      const grown = await storeGrowingFile(repo, 'seg', stable, file.subarray(from, end));
      const whole = await storeAsTree(repo, 'seg', once(file.subarray(0, end)));
      const chunks = (await repo.readTree(grown.tree)).entries[0]!.chunks!;
      expect(chunks.slice(0, whole.chunks.length - 1), `at ${end} bytes`).toEqual(whole.chunks.slice(0, -1));
      const pieces = Math.ceil((end - grown.stable.bytes) / GROWING_TAIL_PIECE);
      expect(chunks.length).toBe(whole.chunks.length - 1 + pieces);
      expect(grown.size).toBe(end);
      expect((await readAll(repo, grown.tree)).equals(file.subarray(0, end))).toBe(true);
      expect(grown.stable.bytes).toBeLessThan(end);
      stable = grown.stable;
    }
    // Re-chunking the whole prefix each time would read 31.4 MB; the stable chunks leave far less.
    expect(read).toBeLessThan(0.75 * (300_000 + 2_500_000 + 2_600_000 + 7_000_000 + 7_000_001 + file.length));
  });

  it('growing a little at a time stores the new bytes and one piece, not the unfinished chunk again', async () => {
    const dir = path.join(temp.dir, 'little');
    const repo = await Repository.init(new FileBlobStore(dir), { authKey: randomBytes(32) });
    // Random bytes: zstd leaves them as they are, so stored bytes are plaintext bytes.
    const file = randomBytes(4 * 1024 * 1024);
    let stable: StableChunks | undefined;
    let end = 200_000;
    stable = (await storeGrowingFile(repo, 'seg', undefined, file.subarray(0, end))).stable;
    await repo.flushBlobs();
    const before = treeBytes(dir);
    let steps = 0;
    for (; end < 3_000_000; end += 20_000, steps++) {
      const from: number = stable?.bytes ?? 0;
      stable = (await storeGrowingFile(repo, 'seg', stable, file.subarray(from, end))).stable;
    }
    await repo.flushBlobs();
    const grown = treeBytes(dir) - before;
    // Each step: its 20,000 new bytes, at most one 64 KiB piece they finish, a tree, and the cuts the chunker made.
    expect(grown).toBeLessThan(steps * (20_000 + GROWING_TAIL_PIECE + 2_000) + 2 * 1024 * 1024);
    // Storing the unfinished chunk whole each time: about half a megabyte a step here.
    expect(grown).toBeLessThan(steps * 150_000);
  });
});
