import { describe, expect, it } from 'vitest';
import {
  encodeIndex,
  encodeTrailer,
  INDEX_MAX_BLOBS,
  PackFormatError,
  parseIndex,
  parseTrailer,
} from '../../../src/vault/repository/pack-format.ts';
import { indexGroups } from '../../../src/vault/repository/pack-writer.ts';

const id = (n: number) => n.toString(16).padStart(64, '0');

describe('pack trailers and index files', () => {
  it('an index and a trailer read back as written', () => {
    const packs = [
      {
        pack: id(1),
        blobs: [
          { id: id(2), offset: 0, length: 10 },
          { id: id(3), offset: 10, length: 5 },
        ],
      },
      { pack: id(4), blobs: [{ id: id(5), offset: 0, length: 7 }] },
    ];
    expect(parseIndex(encodeIndex(packs))).toEqual(packs);
    expect(parseTrailer(encodeTrailer(packs[0]!.blobs), 15)).toEqual(packs[0]!.blobs);
  });

  it.each([
    ['not JSON', '{"packs": ['],
    ['no list of packs', '{"pack": []}'],
    ['a pack without an id', '{"packs": [{"pack": "x", "blobs": []}]}'],
    ['an entry that is not a triple', `{"packs": [{"pack": "${id(1)}", "blobs": [["${id(2)}", 0]]}]}`],
    ['a negative offset', `{"packs": [{"pack": "${id(1)}", "blobs": [["${id(2)}", -1, 4]]}]}`],
    ['an empty blob', `{"packs": [{"pack": "${id(1)}", "blobs": [["${id(2)}", 0, 0]]}]}`],
    ['a fractional length', `{"packs": [{"pack": "${id(1)}", "blobs": [["${id(2)}", 0, 1.5]]}]}`],
    ['a blob id that is not an id', `{"packs": [{"pack": "${id(1)}", "blobs": [["../x", 0, 4]]}]}`],
  ])('an index with %s is refused', (_what, text) => {
    expect(() => parseIndex(Buffer.from(text))).toThrow(PackFormatError);
  });

  it('a trailer naming bytes at or past its own start is refused', () => {
    const blobs = [{ id: id(2), offset: 0, length: 10 }];
    expect(() => parseTrailer(encodeTrailer(blobs), 9)).toThrow(/past the trailer/);
  });

  it('index groups stay within the blobs an index file may name, a pack never split', () => {
    const pack = (n: number, blobs: number) => ({
      pack: id(n),
      blobs: Array.from({ length: blobs }, (_, i) => ({ id: id(1000 + i), offset: i, length: 1 })),
    });
    const groups = indexGroups([pack(1, 20_000), pack(2, 20_000), pack(3, 20_000), pack(4, 20_000)]);
    expect(groups.map((group) => group.map((p) => p.pack))).toEqual([[id(1), id(2), id(3)], [id(4)]]);
    for (const group of groups)
      expect(group.reduce((sum, p) => sum + p.blobs.length, 0)).toBeLessThanOrEqual(INDEX_MAX_BLOBS);
  });
});
