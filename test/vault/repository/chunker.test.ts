import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Chunker, DEFAULT_CHUNKER } from '../../../src/vault/repository/index.ts';
import { digest, SMALL_CHUNKS } from './helpers.ts';

const seed = randomBytes(32).toString('hex');
const small = new Chunker({ ...SMALL_CHUNKS, seed });
const MiB = 1024 * 1024;

async function* pieces(data: Buffer, sizes: () => number): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; ) {
    const n = sizes();
    yield data.subarray(at, at + n);
    at += n;
  }
}

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

function expectBounds(chunker: Chunker, chunks: Uint8Array[], total: number): void {
  expect(chunks.reduce((sum, c) => sum + c.length, 0)).toBe(total);
  chunks.forEach((chunk, i) => {
    if (i < chunks.length - 1) expect(chunk.length).toBeGreaterThanOrEqual(chunker.minSize);
    expect(chunk.length).toBeLessThanOrEqual(chunker.maxSize);
  });
}

describe('FastCDC chunker', () => {
  it('the default 512 KiB/1 MiB/8 MiB chunker keeps every chunk but the last within bounds, averaging near 1 MiB', () => {
    const chunker = new Chunker({ ...DEFAULT_CHUNKER, seed });
    const data = randomBytes(64 * MiB);
    const chunks = [...chunker.chunkBuffer(data)];
    expectBounds(chunker, chunks, data.length);
    const average = data.length / chunks.length;
    expect(average).toBeGreaterThan(0.8 * MiB);
    expect(average).toBeLessThan(1.6 * MiB);
  });

  it('data without boundaries (all zeros) is cut at the maximum size', () => {
    const data = Buffer.alloc(3 * SMALL_CHUNKS.maxSize + 1000);
    const chunks = [...small.chunkBuffer(data)];
    expectBounds(small, chunks, data.length);
    expect(chunks.map((c) => c.length)).toEqual([
      SMALL_CHUNKS.maxSize,
      SMALL_CHUNKS.maxSize,
      SMALL_CHUNKS.maxSize,
      1000,
    ]);
  });

  it('I7: the same bytes give the same chunks whatever the read sizes; another seed cuts elsewhere', async () => {
    const data = randomBytes(6 * MiB);
    const reference = [...small.chunkBuffer(data)].map(digest);
    expect(reference.length).toBeGreaterThan(20);
    for (const sizes of [() => 1 + Math.floor(Math.random() * 300_000), () => 4096, () => 7 * MiB]) {
      const streamed = await collect(small.chunkStream(pieces(data, sizes)));
      expectBounds(small, streamed, data.length);
      expect(streamed.map(digest)).toEqual(reference);
    }
    const other = new Chunker({ ...SMALL_CHUNKS, seed: randomBytes(32).toString('hex') });
    const otherChunks = new Set([...other.chunkBuffer(data)].map(digest));
    expect(reference.filter((d) => otherChunks.has(d)).length).toBeLessThan(reference.length / 2);
  });

  it('inserting bytes near the start leaves most later chunks identical', () => {
    const data = randomBytes(8 * MiB);
    const shifted = Buffer.concat([data.subarray(0, 5000), randomBytes(137), data.subarray(5000)]);
    const before = [...small.chunkBuffer(data)].map(digest);
    const after = new Set([...small.chunkBuffer(shifted)].map(digest));
    const kept = before.filter((d) => after.has(d)).length;
    expect(before.length).toBeGreaterThan(50);
    // Only the chunk around the insertion (and rarely its neighbour) changes.
    expect(kept).toBeGreaterThanOrEqual(before.length - 3);
  });

  it('streams with bounded memory: never more than one window plus one read ahead of what it yielded', async () => {
    const data = randomBytes(4 * MiB);
    const pieceSize = 100_000;
    let pulled = 0;
    let yielded = 0;
    async function* source() {
      for (let at = 0; at < data.length; at += pieceSize) {
        const piece = data.subarray(at, at + pieceSize);
        pulled += piece.length;
        yield piece;
      }
    }
    for await (const chunk of small.chunkStream(source())) {
      expect(pulled - yielded).toBeLessThanOrEqual(small.maxSize + pieceSize);
      yielded += chunk.length;
    }
    expect(yielded).toBe(data.length);
  });

  it('an empty input yields nothing; an input under the minimum is one chunk', async () => {
    expect(await collect(small.chunkStream(pieces(Buffer.alloc(0), () => 1)))).toEqual([]);
    const tiny = randomBytes(SMALL_CHUNKS.minSize - 1);
    const chunks = await collect(small.chunkStream(pieces(tiny, () => 1000)));
    expect(chunks).toHaveLength(1);
    expect(digest(chunks[0]!)).toBe(digest(tiny));
  });

  it('refuses parameters that would break the algorithm', () => {
    expect(() => new Chunker({ minSize: 1000, avgSize: 3000, maxSize: 9000, seed })).toThrow(RangeError);
    expect(() => new Chunker({ minSize: 4096, avgSize: 2048, maxSize: 9000, seed })).toThrow(RangeError);
    expect(() => new Chunker({ ...SMALL_CHUNKS, seed: 'short' })).toThrow(RangeError);
  });
});
