import { randomBytes } from 'node:crypto';
import {
  chmod,
  type FileHandle,
  lstat,
  lutimes,
  mkdir,
  open,
  rename,
  symlink,
  unlink,
  utimes,
} from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from '../../lib/files.ts';
import {
  CorruptBlobError,
  type DamagedFile,
  InvalidTreeError,
  MissingBlobError,
  RestoreIncompleteError,
} from './errors.ts';
import type { RepositoryHandle } from './handle.ts';
import { limiter } from './io.ts';
import { readBlobsAhead } from './read-ahead.ts';
import type { Tree, TreeEntry } from './tree.ts';

/**
 * setuid and setgid are never restored: the restoring user (often root) would own the files, so a
 * tampered unencrypted repository could plant a privileged binary. The service's data never needs them.
 */
const RESTORED_MODE_BITS = 0o1777;

/** Chunks fetched ahead of the one being written, per file. */
const PREFETCH = 3;

export interface RestoreProgress {
  files: number;
  bytes: number;
  /** The file just written, relative to the target. */
  path: string;
}

export interface RestoreOptions {
  /** Files restored at once. */
  concurrency?: number;
  /**
   * false: the folder is scratch that a crash makes the caller write again (a dump pg_restore reads, WAL a
   * recovery replays), so nothing is fsynced: the bytes are read back from the page cache within seconds and
   * the folder removed. Default true: every file and folder is durable before the restore resolves.
   */
  durable?: boolean;
  onProgress?: (progress: RestoreProgress) => void;
}

export interface RestoreResult {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

interface Run {
  repo: RepositoryHandle;
  root: string;
  limit: <T>(task: () => Promise<T>) => Promise<T>;
  result: RestoreResult;
  damaged: DamagedFile[];
  refused: DamagedFile[];
  durable: boolean;
  onProgress: ((progress: RestoreProgress) => void) | undefined;
}

/**
 * Writes a tree under targetDir. Every file goes through a temp file, fsync and rename, so a path holds
 * either its verified content or nothing new. Every path is checked to stay inside targetDir, no
 * existing symlink is ever followed, and a symlink is created only when its target stays inside.
 * Damaged or refused entries are left out and reported together in a RestoreIncompleteError at the end.
 */
export async function restoreTree(
  repo: RepositoryHandle,
  treeId: string,
  targetDir: string,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const root = path.resolve(targetDir);
  // A root tree that does not load means nothing can be restored: fail before creating anything.
  const tree = await repo.readTree(treeId);
  await mkdir(root, { recursive: true });
  const run: Run = {
    repo,
    root,
    limit: limiter(options.concurrency ?? 4),
    result: { files: 0, dirs: 0, symlinks: 0, bytes: 0 },
    damaged: [],
    refused: [],
    durable: options.durable ?? true,
    onProgress: options.onProgress,
  };
  await restoreEntries(run, tree, root, '');
  if (run.durable) await fsyncDir(root);
  if (run.damaged.length > 0 || run.refused.length > 0) {
    throw new RestoreIncompleteError(run.damaged, run.refused);
  }
  return run.result;
}

async function restoreEntries(run: Run, tree: Tree, dir: string, rel: string): Promise<void> {
  await Promise.all(
    tree.entries.map(async (entry) => {
      const relPath = rel ? `${rel}/${entry.name}` : entry.name;
      const abs = path.join(dir, entry.name);
      // Names are validated when the tree is read; this guards the invariant itself.
      if (path.dirname(abs) !== dir || !isInside(run.root, abs)) {
        run.refused.push({ path: relPath, reason: 'its name leads outside the restore folder' });
        return;
      }
      if (entry.type === 'dir') await restoreDir(run, entry, abs, relPath);
      else if (entry.type === 'symlink') await run.limit(() => restoreLink(run, entry, abs, relPath));
      else await run.limit(() => restoreFile(run, entry, abs, relPath));
    }),
  );
}

async function restoreDir(run: Run, entry: TreeEntry, abs: string, relPath: string): Promise<void> {
  let subtree: Tree;
  try {
    subtree = await run.repo.readTree(entry.subtree!);
  } catch (error) {
    const damage = describeDamage(error);
    if (!damage) throw error;
    (error instanceof InvalidTreeError ? run.refused : run.damaged).push({ path: `${relPath}/`, ...damage });
    return;
  }
  try {
    await mkdir(abs);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  // An existing symlink here would carry every write below it elsewhere.
  if (!(await lstat(abs)).isDirectory()) {
    run.refused.push({ path: `${relPath}/`, reason: 'something other than a directory is in the way' });
    return;
  }
  await restoreEntries(run, subtree, abs, relPath);
  if (run.durable) await fsyncDir(abs);
  // Mode last: a read-only directory must still receive its entries first.
  await chmod(abs, entry.mode & RESTORED_MODE_BITS);
  await utimes(abs, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
  run.result.dirs++;
}

async function restoreFile(run: Run, entry: TreeEntry, abs: string, relPath: string): Promise<void> {
  const temp = tempPath(abs);
  const handle = await open(temp, 'wx', 0o600);
  let closed = false;
  try {
    const written = await writeChunks(run.repo, handle, entry.chunks ?? []);
    if (written !== entry.size)
      throw new SizeMismatch(`${written} bytes instead of the recorded ${entry.size}`);
    await handle.chmod(entry.mode & RESTORED_MODE_BITS);
    await handle.utimes(entry.mtimeMs / 1000, entry.mtimeMs / 1000);
    if (run.durable) await handle.sync();
    closed = true;
    await handle.close();
    // rename replaces a file or a symlink at abs, never writes through it.
    await rename(temp, abs);
  } catch (error) {
    if (!closed) await handle.close().catch(() => {});
    await unlink(temp).catch(() => {});
    const damage = describeDamage(error);
    if (damage) return void run.damaged.push({ path: relPath, ...damage });
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST') {
      return void run.refused.push({ path: relPath, reason: 'a directory is in the way' });
    }
    throw error;
  }
  run.result.files++;
  run.result.bytes += entry.size;
  run.onProgress?.({ files: run.result.files, bytes: run.result.bytes, path: relPath });
}

/** Writes the verified chunks in order, a few fetched ahead; a damaged one stops the file. */
async function writeChunks(repo: RepositoryHandle, handle: FileHandle, ids: string[]): Promise<number> {
  let written = 0;
  for await (const data of readBlobsAhead(repo, ids, PREFETCH)) {
    let offset = 0;
    while (offset < data.length) offset += (await handle.write(data, offset)).bytesWritten;
    written += data.length;
  }
  return written;
}

/**
 * The verified content of a file entry as it streams, a few chunks read ahead, for a reader that consumes it
 * without writing it out (the database's dump loaded straight from the repository). A damaged or missing
 * blob, or a size other than the recorded one, throws the RestoreIncompleteError restoreTree would have.
 */
export async function* fileContents(
  repo: Pick<RepositoryHandle, 'getBlob'>,
  entry: TreeEntry,
  relPath: string,
): AsyncGenerator<Buffer> {
  let read = 0;
  try {
    for await (const data of readBlobsAhead(repo, entry.chunks ?? [], PREFETCH)) {
      read += data.length;
      yield data;
    }
    if (read !== entry.size) throw new SizeMismatch(`${read} bytes instead of the recorded ${entry.size}`);
  } catch (error) {
    const damage = describeDamage(error);
    if (damage) throw new RestoreIncompleteError([{ path: relPath, ...damage }], []);
    throw error;
  }
}

async function restoreLink(run: Run, entry: TreeEntry, abs: string, relPath: string): Promise<void> {
  const target = entry.target!;
  if (!linkStaysInside(run.root, path.dirname(abs), target)) {
    run.refused.push({
      path: relPath,
      reason: `its link target ${JSON.stringify(target)} leads outside the restore folder`,
    });
    return;
  }
  const temp = tempPath(abs);
  await symlink(target, temp);
  try {
    await rename(temp, abs);
  } catch (error) {
    await unlink(temp).catch(() => {});
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST') {
      return void run.refused.push({ path: relPath, reason: 'a directory is in the way' });
    }
    throw error;
  }
  await lutimes(abs, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
  run.result.symlinks++;
}

/**
 * Whether following the link lands inside root. Lexical resolution matches the filesystem only when
 * `..` cannot climb out of a symlinked directory, so `..` is allowed only as leading segments (they
 * climb the real directories this restore created); `a/../..` through a link `a` could escape.
 */
export function linkStaysInside(root: string, linkDir: string, target: string): boolean {
  const segments = target.split('/').filter((segment) => segment !== '' && segment !== '.');
  let leading = 0;
  if (!path.isAbsolute(target)) while (segments[leading] === '..') leading++;
  if (segments.slice(leading).includes('..')) return false;
  return isInside(root, path.resolve(linkDir, target));
}

function isInside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

function tempPath(abs: string): string {
  return path.join(path.dirname(abs), `.trendgen-restore-${randomBytes(8).toString('hex')}.tmp`);
}

class SizeMismatch extends Error {}

/** What makes an entry unrestorable (as opposed to an I/O failure that stops the restore). */
function describeDamage(error: unknown): { reason: string; blobId?: string } | undefined {
  if (error instanceof CorruptBlobError) return { reason: `blob ${error.id} is damaged`, blobId: error.id };
  if (error instanceof MissingBlobError) return { reason: `blob ${error.id} is missing`, blobId: error.id };
  if (error instanceof InvalidTreeError) return { reason: error.message, blobId: error.id };
  if (error instanceof SizeMismatch) return { reason: error.message };
  return undefined;
}
