import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { placeFileSync } from '../../lib/files.ts';
import { DecodeError, decodeStored } from '../repository/codec.ts';
import { NOT_ITS_HASH } from './objects-key.ts';
import type { ObjectTask, ObjectTaskResult } from './objects-restore-thread.ts';
import { serveTasks } from './task-thread.ts';

/**
 * Restores objects handed over by objects-restore-thread.ts: reads the object's one blob from its pack file, opens
 * it, checks its bytes against the SHA-256 in its key (I7) and only then writes them where nothing is yet, without
 * an fsync (the restore flushes the store once at its end). Only names cross between the threads, never bytes.
 */
const { key, limit } = workerData as { key: Uint8Array | undefined; limit: number };
const encryptionKey = key ? Buffer.from(key) : undefined;
/** The pack read last: objects come in storage order, so most reads share it. */
let open: { file: string; fd: number } | undefined;

function packDescriptor(file: string): number {
  if (open?.file === file) return open.fd;
  if (open) closeSync(open.fd);
  open = { file, fd: openSync(file, 'r') };
  return open.fd;
}

/**
 * Read buffers, reused: garbage made of buffers is collected only once tens of MB of it pile up, which had taken
 * the restore's peak memory over 300 MB. A task takes one for itself (two overlap only while zstd inflates).
 */
const spare: Buffer[] = [];

async function restore(task: ObjectTask): Promise<ObjectTaskResult> {
  let buffer = spare.pop();
  if (!buffer || buffer.length < task.length) buffer = Buffer.allocUnsafe(Math.max(task.length, 1024 * 1024));
  try {
    return await restoreFrom(buffer.subarray(0, task.length), task);
  } finally {
    spare.push(buffer);
  }
}

async function restoreFrom(stored: Buffer, task: ObjectTask): Promise<ObjectTaskResult> {
  const read = readSync(packDescriptor(task.pack), stored, 0, task.length, task.offset);
  if (read !== task.length) return { n: task.n, damaged: 'its pack file ends before the blob' };
  let plaintext: Buffer;
  try {
    plaintext = (await decodeStored(encryptionKey, stored, limit)).plaintext;
  } catch (error) {
    if (error instanceof DecodeError) return { n: task.n, damaged: error.message, blob: true };
    throw error;
  }
  if (createHash('sha256').update(plaintext).digest('hex') !== task.sha256) {
    return { n: task.n, damaged: NOT_ITS_HASH };
  }
  if (!placeInFolder(task.target, plaintext)) return { n: task.n, exists: true };
  return { n: task.n, written: plaintext.length };
}

/**
 * placeFileSync, making the file's folder only when it is missing: most objects share a folder with the one
 * before, and a `mkdir -p` per object was 40,000 calls failing with EEXIST on a restore of 40,000 objects.
 */
function placeInFolder(target: string, bytes: Buffer): boolean {
  try {
    return placeFileSync(undefined, target, bytes);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(path.dirname(target), { recursive: true });
  return placeFileSync(undefined, target, bytes);
}

serveTasks<ObjectTask, ObjectTaskResult>(parentPort!, restore, {
  onClose: () => {
    if (open) closeSync(open.fd);
  },
});
