import { writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { checkImageFile } from '../../src/objects/image-check.ts';
import { checkImageStructure, MAX_JPEG_SCANS } from '../../src/objects/image-structure.ts';
import { tempDir } from '../support/temp.ts';

const JPEG = { contentType: 'image/jpeg', extension: 'jpg' };
const temp = tempDir('image-structure');
afterAll(() => temp.remove());

let n = 0;
function file(bytes: Buffer): string {
  const name = path.join(temp.dir, `${n++}.bin`);
  writeFileSync(name, bytes);
  return name;
}

const segment = (marker: number, body: Buffer) =>
  Buffer.concat([Buffer.from([0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 0xff]), body]);

/** SOI, one SOS per scan with `entropy` after each, EOI: only the container, for the walk. */
function scans(count: number, entropy: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from([0xff, 0xd8])];
  for (let i = 0; i < count; i++) parts.push(segment(0xda, Buffer.alloc(6)), entropy);
  parts.push(Buffer.from([0xff, 0xd9]));
  return Buffer.concat(parts);
}

describe('where an image ends (objects/image-structure.ts)', () => {
  it(`a JPEG with more than ${MAX_JPEG_SCANS} scans is refused before any decode`, async () => {
    const small = Buffer.from([1, 2, 3]);
    expect(await checkImageStructure(file(scans(MAX_JPEG_SCANS, small)), JPEG)).toEqual({ ok: true });
    expect(await checkImageStructure(file(scans(MAX_JPEG_SCANS + 1, small)), JPEG)).toEqual({
      ok: false,
      problem: 'scans',
      scans: MAX_JPEG_SCANS + 1,
    });
    const started = Date.now();
    await expect(checkImageFile(file(scans(5000, small)), JPEG)).rejects.toThrow(
      /more than 100 progressive scans.*: save it again/,
    );
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('entropy-coded data: stuffed bytes, restarts and fill bytes are data, at any offset of the 64 KiB window', async () => {
    for (const at of [0, 65_530, 65_531, 65_532, 65_533, 65_534, 65_535, 131_070]) {
      const entropy = Buffer.alloc(140_000, 0x11);
      entropy.set([0xff, 0x00], at); // a stuffed 0xFF
      entropy.set([0xff, 0xd3], at + 7); // a restart marker
      const jpeg = scans(2, entropy);
      expect(await checkImageStructure(file(jpeg), JPEG), `at ${at}`).toEqual({ ok: true });
      // The same with one byte after EOI: the walk found the real end, not an FF inside the data.
      expect(await checkImageStructure(file(Buffer.concat([jpeg, Buffer.from([0])])), JPEG)).toEqual({
        ok: false,
        problem: 'trailing',
        extraBytes: 1,
      });
      // Cut anywhere inside the data: no EOI, truncated.
      const cut = jpeg.subarray(0, 20 + at);
      expect(await checkImageStructure(file(cut), JPEG), `cut at ${at}`).toMatchObject({ ok: false });
    }
  });

  it('real encoders: baseline and progressive JPEG, PNG and WebP end where their container says', async () => {
    const base = sharp({ create: { width: 900, height: 700, channels: 3, background: '#3a6' } }).composite([
      { input: Buffer.from('<svg width="900" height="700"><circle cx="40%" cy="50%" r="30%"/></svg>') },
    ]);
    const images = {
      jpeg: await base.clone().jpeg().toBuffer(),
      progressive: await base.clone().jpeg({ progressive: true }).toBuffer(),
      png: await base.clone().png().toBuffer(),
      webp: await base.clone().webp().toBuffer(),
    };
    for (const [name, bytes] of Object.entries(images)) {
      const type =
        name === 'png'
          ? { contentType: 'image/png', extension: 'png' }
          : name === 'webp'
            ? { contentType: 'image/webp', extension: 'webp' }
            : JPEG;
      expect(await checkImageStructure(file(bytes), type), name).toEqual({ ok: true });
      await checkImageFile(file(bytes), type);
      expect(await checkImageStructure(file(bytes.subarray(0, bytes.length - 1)), type), name).toMatchObject({
        ok: false,
      });
    }
  });
});
