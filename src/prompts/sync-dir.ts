import { lstat, readdir } from 'node:fs/promises';
import type { Sql } from '../db/connection.ts';
import { type FileState, type SyncResult, syncPromptFile } from './history.ts';
import { PROMPT_FILE_PATTERN, type PromptFileRead, promptFilePath, readPromptFile } from './prompt-file.ts';

export interface SyncReport {
  /** Names by what their file looks like after the scan. */
  added: string[];
  invalid: string[];
  deleted: string[];
  unchanged: string[];
  /** `.yaml`/`.yml` file names that cannot be prompt names, so they are not read. */
  skipped: string[];
  /** Files that could not be recorded this time (unreadable, database down); the next scan retries. */
  failed: Array<{ name: string; message: string }>;
  /** The results that recorded something. */
  changes: SyncResult[];
  /** The folder does not exist: nothing is marked deleted, since a wrong PROMPTS_DIR is likelier than a loss. */
  directoryMissing: boolean;
}

/** Remembers hashes of over-limit files by their stat, so a rescan does not stream them every time. */
export type LargeFileCache = Map<string, { key: string; sha256: string }>;

export interface SyncOptions {
  maxBytes: number;
  largeFileCache?: LargeFileCache;
}

async function peek(file: string, name: string, opts: SyncOptions): Promise<PromptFileRead> {
  const info = await lstat(file, { bigint: true }).catch(() => undefined);
  const cache = opts.largeFileCache;
  if (!info?.isFile() || !cache || info.size <= BigInt(opts.maxBytes))
    return readPromptFile(file, opts.maxBytes);
  const key = `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
  const hit = cache.get(name);
  if (hit?.key === key) return { kind: 'large', sha256: hit.sha256, size: Number(info.size) };
  const read = await readPromptFile(file, opts.maxBytes);
  if (read.kind === 'large') cache.set(name, { key, sha256: read.sha256 });
  return read;
}

/**
 * Brings the database in line with the folder: every `<name>.yaml` is recorded, and prompts whose file
 * is gone are marked deleted. Unchanged files are compared without a transaction; anything that differs
 * goes through syncPromptFile, which decides again under the row lock.
 */
export async function syncPromptsDir(sql: Sql, promptsDir: string, opts: SyncOptions): Promise<SyncReport> {
  const report: SyncReport = {
    added: [],
    invalid: [],
    deleted: [],
    unchanged: [],
    skipped: [],
    failed: [],
    changes: [],
    directoryMissing: false,
  };
  const names: string[] = [];
  try {
    for (const entry of await readdir(promptsDir, { withFileTypes: true })) {
      if (!/\.ya?ml$/.test(entry.name) || entry.isDirectory()) continue;
      if (PROMPT_FILE_PATTERN.test(entry.name)) names.push(entry.name.slice(0, -'.yaml'.length));
      else report.skipped.push(entry.name);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    report.directoryMissing = true;
  }
  names.sort();
  const known = new Map<string, { fileState: FileState; fileSha256: string | null }>();
  const rows = await sql<Array<{ name: string; fileState: FileState; fileSha256: string | null }>>`
    select name, file_state as "fileState", file_sha256 as "fileSha256" from prompts`;
  for (const row of rows) known.set(row.name, row);

  const record = (result: SyncResult) => {
    const bucket = { added: report.added, unchanged: report.unchanged, invalid: report.invalid };
    (result.outcome === 'deleted' ? report.deleted : bucket[result.outcome]).push(result.name);
    if (result.changed) report.changes.push(result);
  };
  const sync = async (name: string) => {
    try {
      record(await syncPromptFile(sql, promptsDir, name, { maxBytes: opts.maxBytes }));
    } catch (error) {
      report.failed.push({ name, message: (error as Error).message });
    }
  };

  for (const name of names) {
    const row = known.get(name);
    let read: PromptFileRead | undefined;
    try {
      read = await peek(promptFilePath(promptsDir, name), name, opts);
    } catch (error) {
      report.failed.push({ name, message: (error as Error).message });
      continue;
    }
    if (row && read.kind !== 'missing' && row.fileState !== 'deleted' && read.sha256 === row.fileSha256) {
      (row.fileState === 'invalid' ? report.invalid : report.unchanged).push(name);
    } else {
      await sync(name);
    }
  }
  if (!report.directoryMissing) {
    const present = new Set(names);
    for (const [name, row] of known) {
      if (!present.has(name) && row.fileState !== 'deleted' && row.fileSha256 !== null) await sync(name);
    }
  }
  return report;
}
