import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import path from 'node:path';

/** What a prompt file holds, read once so that its hash and its content always agree. */
export type PromptFileRead =
  | { kind: 'missing' }
  | { kind: 'text'; sha256: string; size: number; text: string }
  /** Bytes that are not UTF-8 text (or hold NUL, which PostgreSQL text refuses): kept as base64. */
  | { kind: 'binary'; sha256: string; size: number; base64: string }
  /** Over the size limit: hashed while streaming, never held in memory. */
  | { kind: 'large'; sha256: string; size: number };

export const PROMPT_FILE_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}\.yaml$/;

export function promptFilePath(promptsDir: string, name: string): string {
  return path.join(promptsDir, `${name}.yaml`);
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

const CHUNK = 1024 * 1024;

export async function readPromptFile(file: string, maxBytes: number): Promise<PromptFileRead> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw error;
  }
  try {
    // fstat on the open handle: an editor renaming a new file over this one cannot mix two versions.
    const stat = await handle.stat();
    if (!stat.isFile()) return { kind: 'missing' };
    const hash = createHash('sha256');
    const kept: Buffer[] = [];
    let size = 0;
    const buffer = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(stat.size, maxBytes) + 1));
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
  } finally {
    await handle.close();
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
