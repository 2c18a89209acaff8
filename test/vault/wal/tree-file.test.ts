import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { Repository } from '../../../src/vault/repository/index.ts';
import {
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

async function readAll(repo: Repository, tree: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of readTreeFile(repo, tree)) parts.push(part);
  return Buffer.concat(parts);
}

describe('storeGrowingFile: a partial WAL segment recorded as it grows', () => {
  it('gives the same chunks as storing the whole file again, reading only what follows its stable chunks', async () => {
    const repo = await Repository.init(new FileBlobStore(temp.dir), { authKey: randomBytes(32) });
    const file = randomBytes(12 * 1024 * 1024);
    let stable: StableChunks | undefined;
    let read = 0;
    for (const end of [300_000, 2_500_000, 2_600_000, 7_000_000, 7_000_001, file.length]) {
      const from = stable?.bytes ?? 0;
      read += end - from;
      const grown = await storeGrowingFile(repo, 'seg', stable, file.subarray(from, end));
      const whole = await storeAsTree(repo, 'seg', once(file.subarray(0, end)));
      expect(grown.tree, `at ${end} bytes`).toBe(whole.tree);
      expect(grown.size).toBe(end);
      expect((await readAll(repo, grown.tree)).equals(file.subarray(0, end))).toBe(true);
      expect(grown.stable.bytes).toBeLessThan(end);
      stable = grown.stable;
    }
    // Re-chunking the whole prefix each time would read 31.4 MB; the stable chunks leave far less.
    expect(read).toBeLessThan(0.75 * (300_000 + 2_500_000 + 2_600_000 + 7_000_000 + 7_000_001 + file.length));
  });
});
