import { createReadStream, type Stats } from 'node:fs';
import { mkdir, readdir, statfs } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { type ReadEntry, Unpack } from 'tar';
import { memberPathProblem } from '../../lib/archive-member.ts';

/**
 * Extraction of a .tar.gz that may come from anywhere (an old backup folder, a bucket someone else can
 * write to). The rules, checked on every header before node-tar writes the member:
 *
 * - only regular files and directories: every symlink and hard link is refused, whatever its target.
 *   Backups of prompts and images never need links, and refusing them all closes the tar-slip variants
 *   at once (a link planted early in the archive and written through by a later member, a hard link to
 *   /etc/passwd that a later member overwrites). Devices, FIFOs and unknown types are refused too;
 * - no absolute paths and no `..` segment, and the resolved path must stay inside the target;
 * - the target must be empty (or not exist yet), so no symlink placed there beforehand can redirect a
 *   write either;
 * - at most maxBytes of uncompressed tar stream and maxEntries members (a gzip bomb stops at the limit);
 * - setuid, setgid and ownership are not restored: the extracting user (often root) owns the result.
 *
 * A refusal stops the extraction with one sentence naming the member. What was extracted before it stays
 * in the target (always inside it): callers extract into a fresh temporary folder and remove it on error.
 */

export interface ExtractLimits {
  /** Uncompressed tar stream (contents plus 512-byte headers). Default: 90% of the target's free space. */
  maxBytes?: number;
  /** Members (files and directories). Default: 10 million. */
  maxEntries?: number;
}

export interface ExtractResult {
  files: number;
  dirs: number;
  /** Bytes of file content written. */
  bytes: number;
}

export const DEFAULT_MAX_ENTRIES = 10_000_000;

/** An archive member that must not be extracted, or an archive past a limit; the message names the member. */
export class UnsafeArchiveError extends Error {
  override name = 'UnsafeArchiveError';
  constructor(
    readonly archive: string,
    readonly member: string,
    readonly reason: string,
  ) {
    super(`Refused to extract ${path.basename(archive)}: its member ${JSON.stringify(member)} ${reason}.`);
  }
}

/** The archive is not a readable .tar.gz (truncated, bad checksum, not gzip). */
export class DamagedArchiveError extends Error {
  override name = 'DamagedArchiveError';
  constructor(
    readonly archive: string,
    reason: string,
  ) {
    super(`The archive ${path.basename(archive)} cannot be read: ${reason}.`);
  }
}

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const SPECIAL_TYPES: Record<string, string> = {
  CharacterDevice: 'a character device',
  BlockDevice: 'a block device',
  FIFO: 'a FIFO',
};
const BLOCK = 512;
const TRAILER_ALLOWANCE = 64 * 1024;

export async function extractTarGzSafely(
  file: string,
  targetDir: string,
  limits: ExtractLimits = {},
): Promise<ExtractResult> {
  const root = path.resolve(targetDir);
  await mkdir(root, { recursive: true });
  const present = await readdir(root);
  if (present.length > 0) {
    throw new Error(`Refusing to extract ${path.basename(file)} into ${root}: the folder is not empty.`);
  }
  const maxBytes = limits.maxBytes ?? (await defaultMaxBytes(root));
  const maxEntries = limits.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const result: ExtractResult = { files: 0, dirs: 0, bytes: 0 };
  let entries = 0;
  // Header and padded body of every member so far: what the stream must hold at least.
  let declared = 0;
  let current = '(the first member)';
  let refusal: Error | undefined;

  const unpack = new Unpack({
    cwd: root,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    filter: (_path: string, entry: ReadEntry | Stats) => {
      const member = entry as ReadEntry;
      current = member.path;
      entries++;
      declared += padded(member.size);
      const problem = judge(root, member, entries, maxEntries, declared, maxBytes);
      if (problem) {
        refuse(new UnsafeArchiveError(file, member.path, problem));
        return false;
      }
      // setuid/setgid would hand the extracting user's privileges to whoever wrote the archive.
      if (typeof member.mode === 'number') member.mode &= 0o1777;
      if (member.type === 'Directory') result.dirs++;
      else {
        result.files++;
        result.bytes += member.size ?? 0;
      }
      return true;
    },
  });
  // Types node-tar does not know are dropped before the filter sees them; a backup must not lose them quietly.
  unpack.on('ignoredEntry', (entry: ReadEntry) => {
    if (!refusal) refuse(new UnsafeArchiveError(file, entry.path, `has an unsupported type (${entry.type})`));
  });

  const source = createReadStream(file);
  const gunzip = createGunzip();
  const counter = new ByteLimit(maxBytes, () => {
    refuse(new UnsafeArchiveError(file, current, `takes the archive past the limit of ${maxBytes} bytes`));
  });

  function refuse(error: Error): void {
    refusal ??= error;
    unpack.abort(refusal);
  }

  await new Promise<void>((resolve, reject) => {
    const fail = (error: Error) => {
      source.destroy();
      gunzip.destroy();
      counter.destroy();
      reject(refusal ?? readError(file, error));
    };
    unpack.on('error', fail);
    unpack.on('close', () => (refusal ? reject(refusal) : resolve()));
    source.on('error', fail);
    gunzip.on('error', fail);
    counter.on('error', fail);
    source
      .pipe(gunzip)
      .pipe(counter)
      .pipe(unpack as unknown as NodeJS.WritableStream);
  });
  return result;
}

/** Why a member must not be written, or undefined when it may. */
function judge(
  root: string,
  entry: ReadEntry,
  entries: number,
  maxEntries: number,
  declared: number,
  maxBytes: number,
): string | undefined {
  const type = String(entry.type);
  if (type === 'SymbolicLink' || type === 'Link') {
    const kind = type === 'Link' ? 'a hard link' : 'a symbolic link';
    return `is ${kind} (to ${JSON.stringify(entry.linkpath ?? '')}), and backups are extracted without links`;
  }
  if (type !== 'Directory' && !FILE_TYPES.has(type)) {
    return `is ${SPECIAL_TYPES[type] ?? `a ${type} entry`}, and only regular files and directories are extracted`;
  }
  const problem = memberPathProblem(root, entry.path);
  if (problem) return problem;
  if (path.resolve(root, entry.path) === root && type !== 'Directory') return 'has no file name';
  if (entries > maxEntries) return `is past the limit of ${maxEntries} members`;
  if (declared > maxBytes) return `takes the archive past the limit of ${maxBytes} bytes`;
  return undefined;
}

/** A member's share of the tar stream: its header and its body rounded up to whole blocks. */
function padded(size: number | undefined): number {
  return BLOCK + Math.ceil((size ?? 0) / BLOCK) * BLOCK;
}

/** Passes bytes through until more than `limit` have gone by, then calls onExceed and stops passing. */
class ByteLimit extends Transform {
  private seen = 0;
  constructor(
    private readonly limit: number,
    private readonly onExceed: () => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    // Beyond its members a tar stream holds end blocks and padding to a whole record (10 KiB for GNU tar).
    if (this.seen > this.limit + TRAILER_ALLOWANCE) {
      this.onExceed();
      done();
      return;
    }
    done(null, chunk);
  }
}

/** What a full disk cannot take anyway: beyond it, extracting would only fill the disk the service runs on. */
async function defaultMaxBytes(dir: string): Promise<number> {
  const info = await statfs(dir);
  return Math.floor(Number(info.bavail) * Number(info.bsize) * 0.9);
}

function readError(file: string, error: Error): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR' || code?.startsWith('TAR_')) {
    return new DamagedArchiveError(file, error.message.replace(/^TAR_[A-Z_]+: /, ''));
  }
  return error;
}
