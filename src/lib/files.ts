import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  close,
  closeSync,
  constants,
  existsSync,
  fstat,
  fstatSync,
  fsyncSync,
  mkdirSync,
  open as openFd,
  openSync,
  read,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { open, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

/** Some filesystems cannot fsync a directory at all; PostgreSQL ignores the same two errors. */
function ignorableDirSyncError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EINVAL' || code === 'EBADF';
}

/** fsyncs a directory so that a rename or create inside it survives a power loss. */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } catch (error) {
    if (!ignorableDirSyncError(error)) throw error;
  } finally {
    closeSync(fd);
  }
}

/** The same, without blocking the event loop. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (error) {
    if (!ignorableDirSyncError(error)) throw error;
  } finally {
    await handle.close();
  }
}

/**
 * Makes everything written to the file system that holds `dir` durable: one syncfs(2) (coreutils `sync -f`,
 * which reports write-back errors since Linux 5.8) instead of an fsync per file and folder.
 */
export async function syncFileSystem(dir: string): Promise<void> {
  try {
    await promisify(execFile)('sync', ['-f', dir]);
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr?.trim() || (error as Error).message;
    throw new Error(
      `Could not flush the file system under ${dir} to disk (${detail}): check the disk, then run again.`,
      {
        cause: error,
      },
    );
  }
}

const fdOpen = promisify(openFd);
const fdStat = promisify(fstat);
const fdRead = promisify(read);
const fdClose = promisify(close);

/**
 * A file's bytes, read with a bare descriptor (open, fstat, read, close): no FileHandle and no stream, which
 * cost twice the CPU of the reading itself for files of tens of KB (many small blobs on a restore).
 */
export async function readWholeFile(file: string): Promise<Buffer> {
  return (await readFileUpTo(file, Number.POSITIVE_INFINITY))!;
}

/** A file's bytes when it holds at most `maxBytes` (undefined, nothing read, when more), with a bare descriptor. */
export async function readFileUpTo(file: string, maxBytes: number): Promise<Buffer | undefined> {
  const fd = await fdOpen(file, 'r');
  try {
    const { size } = await fdStat(fd);
    if (size > maxBytes) return undefined;
    const bytes = Buffer.allocUnsafe(size);
    let offset = 0;
    while (offset < size) {
      const { bytesRead } = await fdRead(fd, bytes, offset, size - offset, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
    // A file that shrank while read is returned as it now is; one that grew, up to its size when opened.
    return offset < size ? bytes.subarray(0, offset) : bytes;
  } finally {
    await fdClose(fd);
  }
}

/**
 * readFileUpTo with blocking calls, for a batch job's loop over many small local files, where the four thread-pool
 * round trips of an asynchronous read cost more than the reading; never for a server's request path.
 */
export function readFileUpToSync(file: string, maxBytes: number): Buffer | undefined {
  // Non-blocking open: a FIFO put in place of a file must not hang the thread waiting for a writer.
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: 'EINVAL' });
    const { size } = info;
    if (size > maxBytes) return undefined;
    const bytes = Buffer.allocUnsafe(size);
    let offset = 0;
    while (offset < size) {
      const n = readSync(fd, bytes, offset, size - offset, offset);
      if (n === 0) break;
      offset += n;
    }
    return offset < size ? bytes.subarray(0, offset) : bytes;
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes `bytes` to a new file `temp` and renames it to `target`, with blocking calls and no fsync: for a batch
 * job that makes its files durable at its end (a restore). On failure the temp file is gone and the error thrown.
 * Without a `temp` the file is created at `target` directly, only when nothing is there (no symlink followed, no
 * other name of a hard-linked file written through); false, with nothing written, when something is. A crash
 * can then leave `target` cut short: only for callers whose reader checks every file's size or hash first.
 */
export function placeFileSync(temp: string | undefined, target: string, bytes: Uint8Array): boolean {
  const file = temp ?? target;
  let created = false;
  try {
    const fd = openSync(file, 'wx', 0o644);
    created = true;
    try {
      writeFileSync(fd, bytes);
    } finally {
      closeSync(fd);
    }
    if (temp) renameSync(temp, target);
    return true;
  } catch (error) {
    if (!created && !temp && (error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    if (created) rmSync(file, { force: true });
    throw error;
  }
}

/** Writes a small file atomically: temp file, fsync, rename, fsync of the directory. */
export function writeFileAtomicSync(file: string, content: string | Buffer, mode = 0o644): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true });
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = openSync(temp, 'w', mode);
    try {
      writeFileSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  fsyncDirSync(dir);
}

/** Reads a secret kept in a file, creating it (mode 0600) with a random value the first time. */
export function ensureSecretFile(file: string, bytes = 24): string {
  if (existsSync(file)) {
    const value = readFileSync(file, 'utf8').trim();
    if (value) return value;
  }
  const value = randomBytes(bytes).toString('base64url');
  writeFileAtomicSync(file, `${value}\n`, 0o600);
  return value;
}

/**
 * Deletes the files of `dir` last modified more than `maxAgeMs` ago (a missing folder has none); returns how many.
 * `fail` turns any other error into the caller's sentence.
 */
export async function removeStaleFiles(
  dir: string,
  maxAgeMs: number,
  fail: (error: unknown) => Error,
): Promise<number> {
  const missing = (error: unknown) =>
    ['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '');
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (missing(error)) return 0;
    throw fail(error);
  }
  let removed = 0;
  const now = Date.now();
  for (const name of names) {
    const file = path.join(dir, name);
    try {
      if (now - (await stat(file)).mtimeMs > maxAgeMs) {
        await unlink(file);
        removed++;
      }
    } catch (error) {
      if (!missing(error)) throw fail(error);
    }
  }
  return removed;
}
