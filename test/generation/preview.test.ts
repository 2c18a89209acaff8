import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { makePreview, PreviewError } from '../../src/generation/preview.ts';
import { makePhoto, meanDifference, pixels } from './support/images.ts';

let landscape: Buffer;
let portrait: Buffer;

beforeAll(async () => {
  landscape = await makePhoto({ width: 1536, height: 1152, format: 'png' });
  portrait = await makePhoto({ width: 768, height: 1024, format: 'png' });
});

describe('makePreview', () => {
  it('makes a WebP no larger than maxSide on its long side', async () => {
    const preview = await makePreview(landscape);
    expect(preview.contentType).toBe('image/webp');
    expect(preview.bytes.subarray(8, 12).toString('latin1')).toBe('WEBP');
    expect(await sharp(preview.bytes).metadata()).toMatchObject({ format: 'webp', width: 512, height: 384 });
    expect(await sharp((await makePreview(portrait, { maxSide: 256 })).bytes).metadata()).toMatchObject({
      width: 192,
      height: 256,
    });
    expect(preview.bytes.length).toBeLessThan(landscape.length / 4);
  });

  it('does not enlarge a small image', async () => {
    const small = await makePhoto({ width: 200, height: 100, format: 'png' });
    expect(await sharp((await makePreview(small)).bytes).metadata()).toMatchObject({
      width: 200,
      height: 100,
    });
  });

  it('carries a watermark: it differs from a plain resize where the text runs, and not elsewhere', async () => {
    const plain = await sharp(landscape).resize(512, 384).webp({ quality: 80 }).toBuffer();
    const marked = await makePreview(landscape);
    const unmarked = await makePreview(landscape, { watermark: '' });
    const [p, m, u] = await Promise.all(
      [plain, marked.bytes, unmarked.bytes].map((b) => pixels(b, 512, 384)),
    );
    expect(meanDifference(m!, p!)).toBeGreaterThan(3);
    expect(meanDifference(u!, p!)).toBeLessThan(1.5);
    // The text runs from the bottom-left to the top-right through the centre; the top-left corner stays clean.
    const crop = (bytes: Buffer, left: number, top: number) =>
      sharp(bytes).extract({ left, top, width: 96, height: 96 }).removeAlpha().raw().toBuffer();
    const [mc, pc] = await Promise.all([crop(marked.bytes, 208, 144), crop(plain, 208, 144)]);
    expect(meanDifference(mc, pc)).toBeGreaterThan(10);
    const [mk, pk] = await Promise.all([crop(marked.bytes, 0, 0), crop(plain, 0, 0)]);
    expect(meanDifference(mk, pk)).toBeLessThan(2);
  });

  it('fails with a PreviewError on bytes that are not an image', async () => {
    await expect(makePreview(Buffer.from('nope'))).rejects.toBeInstanceOf(PreviewError);
  });
});
