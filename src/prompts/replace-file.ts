import { randomBytes } from 'node:crypto';
import { link, lstat, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from '../lib/files.ts';
import { sleep } from '../lib/process.ts';
import { type PromptFileRead, readPromptFile } from './prompt-file.ts';

/** Records a content that was on disk (a hand edit the caller may not have seen yet); called under the row lock. */
export type RecordDisplaced = (read: Exclude<PromptFileRead, { kind: 'missing' }>) => Promise<void>;

/** Where a save puts the file it moves out of the way; only a crash in the middle of a save leaves it behind. */
export function displacedPath(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.displaced`);
}

const ATTEMPTS = 20;
/** What link() answers on filesystems without hard links (some network and FUSE mounts). */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/**
 * Puts `from` at `to` only if `to` does not exist: a hard link fails with EEXIST rather than replace. Where the
 * filesystem has no hard links, an lstat then a rename does the same with a window of microseconds.
 */
async function placeIfAbsent(from: string, to: string): Promise<'linked' | 'renamed'> {
  try {
    await link(from, to);
    return 'linked';
  } catch (error) {
    if (!NO_HARD_LINKS.has(code(error) ?? '')) throw error;
  }
  const present = await lstat(to).then(
    () => true,
    (error) => (code(error) === 'ENOENT' ? false : Promise.reject(error)),
  );
  if (present) throw Object.assign(new Error(`${to} exists`), { code: 'EEXIST' });
  await rename(from, to);
  return 'renamed';
}

function code(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException).code;
}

async function writeTemp(file: string, text: string): Promise<string> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o644);
  try {
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
  return temp;
}

/** How long a save waits for a set-aside file that is empty to be written (see readDisplaced). */
export const EMPTY_DISPLACED_WAIT_MS = 2_000;
const EMPTY_POLL_MS = 10;

/**
 * Reads a file a save has just set aside. An empty one is what an editor that rewrites in place leaves
 * between its open (which truncates) and its write: moved aside in that gap, its write lands in this file
 * after the read, and would be lost with it. So an empty file is watched for a while, and read again once
 * its size has grown and held still for one poll; no real prompt is empty, so only that gap pays the wait.
 */
async function readDisplaced(from: string, maxBytes: number): Promise<PromptFileRead> {
  const first = await readPromptFile(from, maxBytes);
  if (first.kind !== 'text' || first.size > 0) return first;
  let lastSize = 0;
  for (let waited = 0; waited < EMPTY_DISPLACED_WAIT_MS; waited += EMPTY_POLL_MS) {
    await sleep(EMPTY_POLL_MS);
    const size = await lstat(from).then(
      (info) => info.size,
      () => 0,
    );
    if (size > 0 && size === lastSize) return readPromptFile(from, maxBytes);
    lastSize = size;
  }
  return lastSize > 0 ? readPromptFile(from, maxBytes) : first;
}

/** Hands what was at the path to `record` and removes it; a leftover that vanished meanwhile is nothing. */
async function recordAndRemove(from: string, maxBytes: number, record: RecordDisplaced): Promise<void> {
  const read = await readDisplaced(from, maxBytes);
  if (read.kind !== 'missing') await record(read);
  await unlink(from).catch((error) => {
    if (code(error) !== 'ENOENT') throw error;
  });
}

/**
 * A crashed save may have left the previous file aside (under the caller's row lock nothing else can be
 * mid-save): put back when the path is empty, else recorded and removed. True when there was one.
 */
export async function settleLeftover(
  file: string,
  maxBytes: number,
  record: RecordDisplaced,
): Promise<boolean> {
  const left = displacedPath(file);
  try {
    if ((await placeIfAbsent(left, file)) === 'renamed') {
      await fsyncDir(path.dirname(file));
      return true;
    }
  } catch (error) {
    if (code(error) === 'ENOENT') return false;
    if (code(error) !== 'EEXIST') throw error;
    await recordAndRemove(left, maxBytes, record);
    await fsyncDir(path.dirname(file));
    return true;
  }
  await unlink(left);
  await fsyncDir(path.dirname(file));
  return true;
}

/**
 * Writes `text` to `file` without ever replacing a content nobody recorded (I5), as a compare-and-swap on the
 * path: the new content is written and fsynced beside it; the current file is renamed aside — one atomic step
 * that takes exactly what was there at that instant — and examined, so a hand edit saved since the caller read
 * the file is recorded, not lost; the new file is then hard-linked into place, which fails rather than
 * replaces when someone wrote the path in between (that content is recorded too, and the swap tried again).
 * Called under the prompt's row lock, after settleLeftover, so saves of one prompt never interleave.
 */
export async function replacePromptFile(
  file: string,
  text: string,
  maxBytes: number,
  record: RecordDisplaced,
): Promise<void> {
  const dir = path.dirname(file);
  const temp = await writeTemp(file, text);
  const aside = displacedPath(file);
  try {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      let moved = true;
      await rename(file, aside).catch((error) => {
        if (code(error) !== 'ENOENT') throw error;
        moved = false;
      });
      try {
        await placeIfAbsent(temp, file);
      } catch (error) {
        if (code(error) !== 'EEXIST') throw error;
        // Written between the rename and the link: both contents are hand edits, recorded in their order.
        if (moved) await recordAndRemove(aside, maxBytes, record);
        const appeared = await readPromptFile(file, maxBytes);
        if (appeared.kind !== 'missing') await record(appeared);
        continue;
      }
      await fsyncDir(dir);
      if (moved) await recordAndRemove(aside, maxBytes, record);
      await fsyncDir(dir);
      return;
    }
    throw new Error(
      `The prompt file ${file} kept changing while it was saved (${ATTEMPTS} attempts): save it again.`,
    );
  } finally {
    await unlink(temp).catch(() => {});
  }
}
