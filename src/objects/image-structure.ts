import { type FileHandle, open } from 'node:fs/promises';
import type { DetectedType } from './sniff.ts';

/** What the container says about where the image ends, read without decoding a pixel. */
export type ImageStructure =
  | { ok: true }
  | { ok: false; problem: 'truncated' }
  | { ok: false; problem: 'malformed' }
  | { ok: false; problem: 'trailing'; extraBytes: number }
  | { ok: false; problem: 'scans'; scans: number };

/**
 * A progressive JPEG decodes every scan over the whole image before the first line comes out, so its scans
 * multiply the decode time and no timeout can interrupt them. Encoders write 10 (libjpeg's default script)
 * to a few dozen (mozjpeg's optimised scripts); libjpeg-turbo's own tools suggest a limit of 100 for
 * untrusted files, which is the limit here.
 */
export const MAX_JPEG_SCANS = 100;

/** A file read through a 64 KiB window: the walks below touch a few bytes per chunk or segment. */
class Window {
  private buffer = Buffer.alloc(0);
  private start = 0;
  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  /** The bytes from `offset` on, at least `want` of them unless the file ends first. */
  async at(offset: number, want: number): Promise<Buffer> {
    const end = this.start + this.buffer.length;
    if (offset < this.start || offset + want > end) {
      const length = Math.max(want, 64 * 1024);
      const fresh = Buffer.alloc(Math.min(length, Math.max(0, this.size - offset)));
      const { bytesRead } = await this.handle.read(fresh, 0, fresh.length, offset);
      this.buffer = fresh.subarray(0, bytesRead);
      this.start = offset;
    }
    return this.buffer.subarray(offset - this.start);
  }
}

/**
 * Checks that the file is one image and nothing else: it must end exactly where its container says the
 * image ends (PNG: after IEND; JPEG: after EOI; WebP: after the RIFF size). Bytes beyond that are another
 * file riding along (a polyglot: a ZIP, HTML or script that some reader would take for itself); a file
 * that stops before it is truncated. Bytes inside the image's own metadata are left to the format.
 */
export async function checkImageStructure(file: string, type: DetectedType): Promise<ImageStructure> {
  const handle = await open(file, 'r');
  try {
    const window = new Window(handle, (await handle.stat()).size);
    if (type.contentType === 'image/png') return await pngStructure(window);
    if (type.contentType === 'image/jpeg') return await jpegStructure(window);
    return await webpStructure(window);
  } finally {
    await handle.close();
  }
}

function ending(end: number, size: number): ImageStructure {
  if (end > size) return { ok: false, problem: 'truncated' };
  if (end < size) return { ok: false, problem: 'trailing', extraBytes: size - end };
  return { ok: true };
}

/** Chunks after the 8-byte signature: length, type, data, CRC; IEND is the last. */
async function pngStructure(window: Window): Promise<ImageStructure> {
  let offset = 8;
  while (offset + 8 <= window.size) {
    const head = await window.at(offset, 8);
    const length = head.readUInt32BE(0);
    const next = offset + 12 + length;
    if (head.toString('latin1', 4, 8) === 'IEND') return ending(next, window.size);
    offset = next;
  }
  return { ok: false, problem: 'truncated' };
}

/** Segments after SOI; after each SOS, entropy-coded data up to the next marker that is not a restart. */
async function jpegStructure(window: Window): Promise<ImageStructure> {
  let offset = 2;
  let scans = 0;
  while (offset < window.size) {
    const bytes = await window.at(offset, 4);
    if (bytes[0] !== 0xff) return { ok: false, problem: 'malformed' };
    const marker = bytes[1];
    if (marker === undefined) break;
    if (marker === 0xff) {
      offset += 1; // fill byte before a marker
      continue;
    }
    if (marker === 0xd9) return ending(offset + 2, window.size);
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      offset += 2;
      continue;
    }
    if (bytes.length < 4) break;
    const segmentEnd = offset + 2 + bytes.readUInt16BE(2);
    if (marker !== 0xda) {
      offset = segmentEnd;
      continue;
    }
    scans += 1;
    if (scans > MAX_JPEG_SCANS) return { ok: false, problem: 'scans', scans };
    offset = await afterEntropyData(window, segmentEnd);
  }
  return { ok: false, problem: 'truncated' };
}

/** The offset of the first marker after entropy-coded data (FF 00 is a stuffed byte, FF D0–D7 a restart). */
async function afterEntropyData(window: Window, from: number): Promise<number> {
  let offset = from;
  while (offset < window.size) {
    const bytes = await window.at(offset, 2);
    const ff = bytes.indexOf(0xff);
    if (ff === -1) {
      offset += bytes.length;
      continue;
    }
    if (ff + 1 >= bytes.length) {
      // The marker's second byte is past this window: read again from the FF.
      if (offset + ff + 1 >= window.size) return window.size;
      offset += ff;
      const pair = await window.at(offset, 2);
      if (pair.length < 2) return window.size;
      if (isMarker(pair[1]!)) return offset;
      offset += 2;
      continue;
    }
    if (isMarker(bytes[ff + 1]!)) return offset + ff;
    offset += ff + 2;
  }
  return window.size;
}

function isMarker(second: number): boolean {
  return second !== 0x00 && !(second >= 0xd0 && second <= 0xd7);
}

/** RIFF size (little-endian, after the first 8 bytes) covers the whole WebP file. */
async function webpStructure(window: Window): Promise<ImageStructure> {
  const head = await window.at(0, 12);
  if (head.length < 12) return { ok: false, problem: 'truncated' };
  return ending(8 + head.readUInt32LE(4), window.size);
}
