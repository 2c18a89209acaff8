import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  COMPRESSION_ZSTD,
  compressAt,
  maybeCompress,
  unpack,
  zstdBound,
} from '../../../src/vault/repository/compression.ts';

const LIMIT = 32 * 1024 * 1024;

/** Rows of text, as a dump holds: zstd shrinks them about fivefold. */
function textRows(bytes: number): Buffer {
  const rows: string[] = [];
  for (let i = 0, size = 0; size < bytes; i++) {
    const row = `${i}\tprompt-${i % 200}\t{"seed":${(i * 104729) % 1000003}}\t/images/${((i * 2654435761) >>> 0).toString(16)}.jpg\n`;
    rows.push(row);
    size += row.length;
  }
  return Buffer.from(rows.join(''));
}

// I7: what a blob decodes to is what was stored, whichever decoder its compression ratio picks (damage is caught
// after decoding, by the content's id).
describe('zstd payloads decoded by the decoder their ratio picks', () => {
  const cases: Array<[string, Buffer]> = [
    [
      'a page-like payload (ratio far above 10: WebAssembly)',
      Buffer.concat([Buffer.alloc(2_000_000, 0), randomBytes(4096)]),
    ],
    ['dump-like text (ratio about 5: the native binding)', textRows(2_000_000)],
  ];
  for (const [what, plain] of cases) {
    it(`gives back ${what} byte for byte`, async () => {
      const packed = await compressAt(plain, 3);
      const ratio = zstdBound(packed, LIMIT) / packed.length;
      expect(what.includes('WebAssembly') ? ratio >= 10 : ratio < 10).toBe(true);
      expect((await unpack(COMPRESSION_ZSTD, packed, LIMIT)).equals(plain)).toBe(true);
    });
  }
});

// The repository's configured level is the one used: @mongodb-js/zstd's wrapper dropped it, so every payload was
// compressed at the default whatever the config said.
describe('compression level', () => {
  it('compresses at the level it is given', async () => {
    const plain = textRows(1_000_000);
    const fast = await maybeCompress(plain, 1);
    const strong = await maybeCompress(plain, 19);
    expect(fast.compression).toBe(COMPRESSION_ZSTD);
    expect(strong.payload.length).toBeLessThan(fast.payload.length * 0.9);
    for (const { payload } of [fast, strong]) {
      expect((await unpack(COMPRESSION_ZSTD, payload, LIMIT)).equals(plain)).toBe(true);
    }
  });
});
