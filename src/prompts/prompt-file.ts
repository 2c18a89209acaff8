import { createHash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { type FileHandle, lstat, open } from 'node:fs/promises';
import path from 'node:path';
import type { FileError } from './history-types.ts';
import { PromptValidationError, parsePrompt } from './schema.ts';

/** What a prompt file holds, read once so that its hash and its content always agree. */
export type PromptFileRead =
  | { kind: 'missing' }
  | { kind: 'text'; sha256: string; size: number; text: string }
  /** Bytes that are not UTF-8 text (or hold NUL, which PostgreSQL text refuses): kept as base64. */
  | { kind: 'binary'; sha256: string; size: number; base64: string }
  /** Over the size limit: hashed while streaming, never held in memory. */
  | { kind: 'large'; sha256: string; size: number }
  /**
   * Not a regular file: a symbolic link (never followed, so its target is never read), a FIFO, a socket, a
   * device or a folder. Nothing is read from it; `sha256` names what it is, so a rescan records it once.
   */
  | { kind: 'special'; sha256: string; size: 0; what: SpecialKind };

export type SpecialKind = 'symlink' | 'fifo' | 'socket' | 'device' | 'directory';

export const PROMPT_FILE_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}\.yaml$/;

export function promptFilePath(promptsDir: string, name: string): string {
  return path.join(promptsDir, `${name}.yaml`);
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

const CHUNK = 1024 * 1024;

/**
 * Opened without following a link (a link to /etc/shadow must not be read with the service's rights).
 * O_NONBLOCK: opening a FIFO must not wait for a writer, which would hold a libuv thread for good.
 */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

function special(what: SpecialKind): PromptFileRead {
  return { kind: 'special', sha256: sha256Hex(`not a regular file: ${what}`), size: 0, what };
}

function specialKind(info: Stats): SpecialKind | undefined {
  if (info.isFile()) return undefined;
  if (info.isSymbolicLink()) return 'symlink';
  if (info.isFIFO()) return 'fifo';
  if (info.isSocket()) return 'socket';
  if (info.isDirectory()) return 'directory';
  return 'device';
}

/** How long one prompt file may take to read: a hung filesystem must not hang a request or a scan. */
export const PROMPT_READ_TIMEOUT_MS = 5_000;

/** A prompt file whose read did not finish in time (a hung network filesystem, a stuck device). */
export class PromptFileTimeoutError extends Error {
  override name = 'PromptFileTimeoutError';
  constructor(file: string, timeoutMs: number) {
    super(
      `The prompt file ${file} could not be read within ${timeoutMs / 1000} s: check the filesystem under PROMPTS_DIR.`,
    );
  }
}

/**
 * Reads `<name>.yaml` as it is now. Only a regular file inside the folder is ever opened: the path is checked
 * with lstat, opened with O_NOFOLLOW|O_NONBLOCK, and checked again with fstat on the open handle (so a file
 * swapped for a link or a FIFO between the two is still refused). A read that takes longer than `timeoutMs`
 * is given up with PromptFileTimeoutError.
 */
export async function readPromptFile(
  file: string,
  maxBytes: number,
  timeoutMs = PROMPT_READ_TIMEOUT_MS,
): Promise<PromptFileRead> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PromptFileTimeoutError(file, timeoutMs)), timeoutMs);
  });
  try {
    return await Promise.race([readNow(file, maxBytes), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function readNow(file: string, maxBytes: number): Promise<PromptFileRead> {
  try {
    const kind = specialKind(await lstat(file));
    if (kind) return special(kind);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw error;
  }
  let handle: FileHandle;
  try {
    handle = await open(file, OPEN_FLAGS);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    // Replaced between lstat and open: a link (O_NOFOLLOW refuses it) or a socket (which cannot be opened).
    if (code === 'ELOOP') return special('symlink');
    if (code === 'ENXIO') return special('socket');
    throw error;
  }
  try {
    // fstat on the open handle: an editor renaming a new file over this one cannot mix two versions.
    const stat = await handle.stat();
    const kind = specialKind(stat);
    if (kind) return special(kind);
    return await readOpenFile(handle, stat.size, maxBytes);
  } finally {
    await handle.close();
  }
}

async function readOpenFile(handle: FileHandle, statSize: number, maxBytes: number): Promise<PromptFileRead> {
  const hash = createHash('sha256');
  const kept: Buffer[] = [];
  let size = 0;
  const buffer = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(statSize, maxBytes) + 1));
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
    if (bytesRead === 0) break;
    const chunk = buffer.subarray(0, bytesRead);
    hash.update(chunk);
    size += bytesRead;
    // Only contents within the limit are kept; a file that grows past it while read is "large".
    if (size <= maxBytes) kept.push(Buffer.from(chunk));
    else kept.length = 0;
  }
  const sha256 = hash.digest('hex');
  if (size > maxBytes) return { kind: 'large', sha256, size };
  const bytes = Buffer.concat(kept, size);
  const text = decodeUtf8(bytes);
  if (text === undefined || text.includes('\u0000')) {
    return { kind: 'binary', sha256, size, base64: bytes.toString('base64') };
  }
  return { kind: 'text', sha256, size, text };
}

const SPECIAL_SENTENCES: Record<SpecialKind, string> = {
  symlink: 'the file is a symbolic link, which is never followed: put the prompt file itself in PROMPTS_DIR',
  fifo: 'the file is a named pipe (FIFO), not a regular file: replace it with the prompt file itself',
  socket: 'the file is a socket, not a regular file: replace it with the prompt file itself',
  device: 'the file is a device, not a regular file: replace it with the prompt file itself',
  directory: 'the file is a folder, not a regular file: replace it with the prompt file itself',
};

/** Why a read prompt file cannot be used, in one sentence with its line and column; undefined when it can. */
export function promptFileProblem(
  read: Exclude<PromptFileRead, { kind: 'missing' }>,
  name: string,
  maxBytes: number,
): FileError | undefined {
  if (read.kind === 'special') {
    return { message: `line 1, column 1: ${SPECIAL_SENTENCES[read.what]}`, line: 1, column: 1 };
  }
  if (read.kind === 'large') {
    return {
      message: `line 1, column 1: the file is ${read.size} bytes, more than the limit of ${maxBytes} bytes (MAX_PROMPT_SIZE)`,
      line: 1,
      column: 1,
    };
  }
  if (read.kind === 'binary') {
    return {
      message: 'line 1, column 1: the file is not UTF-8 text',
      line: 1,
      column: 1,
      contentEncoding: 'base64',
    };
  }
  try {
    parsePrompt(read.text, name);
    return undefined;
  } catch (error) {
    if (!(error instanceof PromptValidationError)) throw error;
    return { message: error.message, line: error.line, column: error.column };
  }
}

// ignoreBOM keeps a byte-order mark in the text, so the stored content hashes to the file's bytes.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeUtf8(bytes: Buffer): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}
