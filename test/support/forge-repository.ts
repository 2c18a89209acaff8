import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { canonicalJson } from '../../src/vault/repository/canonical-json.ts';
import { unpack } from '../../src/vault/repository/compression.ts';

/**
 * Writes into an unencrypted repository what docs/repository-format.md describes, as someone with write
 * access to the repository and nothing else (no key) would: frames of kind and "no compression", SHA-256
 * names, canonical JSON for trees and the snapshot record.
 */
const KIND = { data: 0, tree: 1, snapshot: 2 } as const;

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

function put(repoDir: string, key: string, kind: keyof typeof KIND, plaintext: Buffer): void {
  const file = path.join(repoDir, key);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, Buffer.concat([Buffer.from([KIND[kind], 0]), plaintext]));
}

function putBlob(repoDir: string, kind: 'data' | 'tree', plaintext: Buffer): string {
  const id = sha256(plaintext);
  put(repoDir, `data/${id.slice(0, 2)}/${id}`, kind, plaintext);
  return id;
}

/** Stores a directory (each file one chunk) and returns its tree id. */
export function forgeTree(repoDir: string, dir: string): string {
  const entries = readdirSync(dir, { withFileTypes: true }).map((dirent) => {
    const abs = path.join(dir, dirent.name);
    const base = { name: dirent.name, mode: 0o644, mtimeMs: statSync(abs).mtimeMs };
    if (dirent.isDirectory()) return { ...base, type: 'dir', size: 0, subtree: forgeTree(repoDir, abs) };
    const content = readFileSync(abs);
    return {
      ...base,
      type: 'file',
      size: content.length,
      chunks: content.length ? [putBlob(repoDir, 'data', content)] : [],
    };
  });
  entries.sort((a, b) => (a.name < b.name ? -1 : 1));
  return putBlob(repoDir, 'tree', Buffer.from(canonicalJson({ entries })));
}

/** Writes a snapshot record and returns its id. */
export function forgeSnapshot(repoDir: string, record: Record<string, unknown>): string {
  const plaintext = Buffer.from(canonicalJson(record));
  const id = sha256(plaintext);
  put(repoDir, `snapshots/${id}`, 'snapshot', plaintext);
  return id;
}

/** Writes a deletion ledger entry (format §7.2). */
export function forgeDeletion(
  repoDir: string,
  record: { id: number; userId: string; requestedAt: string },
): string {
  const name = `${String(Date.parse(record.requestedAt)).padStart(15, '0')}-${record.id}`;
  put(repoDir, `ledger/deletions/${name}`, 'snapshot', Buffer.from(JSON.stringify(record)));
  return name;
}

/** The plaintext of a record in an unencrypted repository, read as the format describes (no key needed). */
export async function readRecordJson(repoDir: string, key: string): Promise<Record<string, unknown>> {
  const stored = readFileSync(path.join(repoDir, key));
  // Format 2 records end in a 32-byte tag (format 1 ones do not); the frame before it is readable by anyone.
  for (const frame of [stored.subarray(0, stored.length - 32), stored]) {
    try {
      return JSON.parse(
        (await unpack(frame[1]!, frame.subarray(2), 16 * 1024 * 1024)).toString('utf8'),
      ) as Record<string, unknown>;
    } catch {
      // not this length
    }
  }
  throw new Error(`${key} is not a readable record`);
}
