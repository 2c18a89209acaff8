import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { framedParts, lengthOf } from '../repository/codec.ts';
import { COMPRESSION_NONE } from '../repository/compression.ts';
import { contentId } from '../repository/crypto.ts';
import type { SealResult, SealTask } from './objects-seal-thread.ts';
import { serveTasks } from './task-thread.ts';

/**
 * Seals objects handed over by objects-seal-thread.ts: reads a local object whole, checks it against the SHA-256
 * in its key (I7: a damaged copy never becomes a blob; it goes back to the main thread, which names or repairs
 * it), names it (the repository's content id) and encodes it as one uncompressed blob, as the main thread's
 * putBlob would. The stored bytes move to the main thread, not copied; the read buffer stays here for the next.
 */
const data = workerData as { encryptionKey?: Uint8Array; macKey?: Uint8Array; maxBytes: number };
const encryptionKey = data.encryptionKey ? Buffer.from(data.encryptionKey) : undefined;
const macKey = data.macKey ? Buffer.from(data.macKey) : undefined;
let readBuffer = Buffer.allocUnsafe(1024 * 1024);

function seal(task: SealTask): SealResult {
  let fd: number;
  try {
    fd = openSync(task.file, 'r');
  } catch (error) {
    return { n: task.n, skipped: (error as NodeJS.ErrnoException).code ?? 'unreadable' };
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0 || size > data.maxBytes) return { n: task.n, skipped: 'size' };
    if (readBuffer.length < size) readBuffer = Buffer.allocUnsafe(size);
    const plaintext = readBuffer.subarray(0, size);
    let read = 0;
    for (let got = 1; read < size && got > 0; read += got)
      got = readSync(fd, plaintext, read, size - read, read);
    if (read !== size) return { n: task.n, skipped: 'short read' };
    if (createHash('sha256').update(plaintext).digest('hex') !== task.sha256)
      return { n: task.n, skipped: 'hash' };
    const parts = framedParts(encryptionKey, 'data', COMPRESSION_NONE, plaintext);
    // Its own memory, so it can be moved; unencrypted, a part is the read buffer itself, reused for the next.
    const stored = Buffer.allocUnsafeSlow(lengthOf(parts));
    let at = 0;
    for (const part of parts) at += part.copy(stored, at);
    return { n: task.n, id: contentId(macKey, plaintext), size, stored };
  } finally {
    closeSync(fd);
  }
}

serveTasks<SealTask, SealResult>(parentPort!, seal, {
  transfer: (result) => ('stored' in result ? [result.stored.buffer as ArrayBuffer] : []),
});
