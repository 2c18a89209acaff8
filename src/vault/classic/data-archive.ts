import { createWriteStream } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { Pack } from 'tar';
import { looksCompressed } from '../repository/compression.ts';

/**
 * Writes a folder as a .tar.gz in two gzip members, one tar stream: first the directories and the files
 * that compress (prompts, JSON) at level 6, then the files that are compressed already (JPEG, PNG, WebP,
 * gzip, zstd) stored at level 0. zlib deflates such data at under 40 MB/s for no gain, which made the
 * images dominate an export's time; storing them runs at disk speed. A gzip file may hold several members
 * (RFC 1952 §2.2): gunzip, `tar -xzf` and node's zlib read them as one stream.
 *
 * The first member holds the tar without its end-of-archive blocks, so the two members decompress to
 * one valid tar. Returns the count of regular files written.
 */
export async function writeTarGzByContent(cwd: string, entries: string[], target: string): Promise<number> {
  const text: string[] = [];
  const packed: string[] = [];
  for (const entry of entries) await classify(cwd, entry, text, packed);
  await appendMember(cwd, text, target, 6, false, 'w');
  await appendMember(cwd, packed, target, 0, true, 'a');
  return text.filter((p) => !p.endsWith('/')).length + packed.length;
}

/** Directories (with a trailing slash) and text go to `text`, already-compressed files to `packed`. */
async function classify(cwd: string, rel: string, text: string[], packed: string[]): Promise<void> {
  const abs = path.join(cwd, rel);
  const dirents = await readdir(abs, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOTDIR') return undefined;
    throw error;
  });
  if (!dirents) {
    ((await isCompressedFile(abs)) ? packed : text).push(rel);
    return;
  }
  text.push(`${rel}/`);
  for (const dirent of dirents.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const child = path.join(rel, dirent.name);
    if (dirent.isDirectory()) await classify(cwd, child, text, packed);
    else if (dirent.isFile() && (await isCompressedFile(path.join(cwd, child)))) packed.push(child);
    else text.push(child);
  }
}

async function isCompressedFile(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(12);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return looksCompressed(head.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

const END_BLOCKS = 1024;
/** zlib's default 16 KiB output chunks make stored (level 0) data three times slower than 1 MiB ones. */
const GZIP_CHUNK = 1024 * 1024;

async function appendMember(
  cwd: string,
  paths: string[],
  target: string,
  level: number,
  last: boolean,
  flags: 'w' | 'a',
): Promise<void> {
  // noDirRecurse: a directory is one entry here; its files are listed on their own, in their member.
  const pack = new Pack({ cwd, portable: true, noDirRecurse: true, strict: true });
  for (const p of paths) pack.add(p.replace(/\/$/, ''));
  pack.end();
  const stages = [
    Readable.from(pack),
    ...(last ? [] : [new WithoutEndBlocks()]),
    createGzip({ level, chunkSize: GZIP_CHUNK }),
  ];
  await pipeline([...stages, createWriteStream(target, { flags })]);
}

/** Passes a tar stream on without its final 1024 zero bytes (and checks that they are zeros). */
class WithoutEndBlocks extends Transform {
  private held = Buffer.alloc(0);
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const all = Buffer.concat([this.held, chunk]);
    const keep = Math.max(0, all.length - END_BLOCKS);
    this.held = all.subarray(keep);
    done(null, all.subarray(0, keep));
  }
  override _flush(done: TransformCallback): void {
    if (this.held.length !== END_BLOCKS || this.held.some((byte) => byte !== 0)) {
      done(new Error('node-tar did not end the archive with two zero blocks; cannot join the members.'));
      return;
    }
    done();
  }
}
