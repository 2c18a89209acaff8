import type { Sql, TransactionSql } from '../db/connection.ts';
import { getVersion } from './history-reads.ts';
import type { FileError, FileState, PromptOrigin } from './history-types.ts';
import {
  type PromptFileRead,
  promptFilePath,
  promptFileProblem,
  readPromptFile,
  sha256Hex,
} from './prompt-file.ts';
import { type RecordDisplaced, replacePromptFile, settleLeftover } from './replace-file.ts';
import { assertPromptName, PromptValidationError, parsePrompt } from './schema.ts';

export type { FileError, FileState, PromptOrigin } from './history-types.ts';

/** The config default (MAX_PROMPT_SIZE), for callers that have no Config at hand. */
export const DEFAULT_MAX_PROMPT_BYTES = 256 * 1024;

export class PromptConflictError extends Error {
  override name = 'PromptConflictError';
  constructor(
    readonly promptName: string,
    readonly currentVersion: number | null,
    readonly expectedVersion: number,
  ) {
    super(
      `Prompt ${promptName} is at version ${currentVersion ?? 0}, not ${expectedVersion}: reload it and apply the change again.`,
    );
  }
}

export interface SaveResult {
  name: string;
  version: number;
  sha256: string;
  /** False when the content equals the current version: nothing new was recorded. */
  created: boolean;
}

/** What one file looks like after a sync: `changed` says whether anything was recorded just now. */
export interface SyncResult {
  name: string;
  outcome: 'added' | 'unchanged' | 'invalid' | 'deleted';
  changed: boolean;
  version: number | null;
  error?: FileError;
}

interface LockedPrompt {
  currentVersion: number | null;
  currentSha256: string | null;
  fileState: FileState;
  fileSha256: string | null;
}

/** Every change to one prompt happens under this row lock, so versions never race. */
async function lockPrompt(
  tx: TransactionSql,
  name: string,
  create: boolean,
): Promise<LockedPrompt | undefined> {
  if (create) await tx`insert into prompts (name) values (${name}) on conflict do nothing`;
  const [row] = await tx<LockedPrompt[]>`
    select p.current_version as "currentVersion", v.sha256 as "currentSha256",
           p.file_state as "fileState", p.file_sha256 as "fileSha256"
    from prompts p
    left join prompt_versions v on v.name = p.name and v.version = p.current_version
    where p.name = ${name}
    for update of p`;
  return row;
}

async function insertVersion(
  tx: TransactionSql,
  name: string,
  content: string,
  sha256: string,
  origin: PromptOrigin,
): Promise<number> {
  const [next] = await tx<{ version: number }[]>`
    select coalesce(max(version), 0) + 1 as version from prompt_versions where name = ${name}`;
  const version = next!.version;
  await tx`insert into prompt_versions (name, version, sha256, content, origin)
           values (${name}, ${version}, ${sha256}, ${content}, ${origin})`;
  await tx`update prompts set current_version = ${version}, file_state = 'ok', file_error = null,
           file_sha256 = ${sha256}, updated_at = now() where name = ${name}`;
  return version;
}

/** Records what the file holds now against what the locked row knows (I5: invalid never becomes current). */
async function applyFile(
  tx: TransactionSql,
  name: string,
  row: LockedPrompt,
  read: PromptFileRead,
  maxBytes: number,
): Promise<SyncResult> {
  const result = (outcome: SyncResult['outcome'], changed: boolean, extra: Partial<SyncResult> = {}) => ({
    name,
    outcome,
    changed,
    version: row.currentVersion,
    ...extra,
  });
  if (read.kind === 'missing') {
    // No file ever seen (a fresh row, or already marked deleted): nothing disappeared.
    if (row.fileSha256 === null) return result(row.fileState === 'deleted' ? 'deleted' : 'unchanged', false);
    await tx`update prompts set file_state = 'deleted', file_error = null, file_sha256 = null, updated_at = now()
             where name = ${name}`;
    await tx`insert into prompt_events (name, event, sha256) values (${name}, 'deleted', ${row.fileSha256})`;
    return result('deleted', true);
  }
  if (read.sha256 === row.fileSha256 && row.fileState !== 'deleted') {
    return result(row.fileState === 'invalid' ? 'invalid' : 'unchanged', false);
  }
  if (row.fileState === 'deleted') {
    await tx`insert into prompt_events (name, event, sha256, size)
             values (${name}, 'recovered', ${read.sha256}, ${read.size})`;
  }
  const problem = promptFileProblem(read, name, maxBytes);
  if (problem === undefined && read.kind === 'text') {
    if (read.sha256 === row.currentSha256) {
      await tx`update prompts set file_state = 'ok', file_error = null, file_sha256 = ${read.sha256},
               updated_at = now() where name = ${name}`;
      return result('unchanged', true);
    }
    const version = await insertVersion(tx, name, read.text, read.sha256, 'file');
    return result('added', true, { version });
  }
  const error = problem!;
  // One event per distinct invalid content: a rescan, or the same mistake made twice, adds nothing.
  const [seen] = await tx`select 1 from prompt_events
                          where name = ${name} and event = 'invalid' and sha256 = ${read.sha256} limit 1`;
  if (!seen) {
    const content = read.kind === 'text' ? read.text : read.kind === 'binary' ? read.base64 : null;
    await tx`insert into prompt_events (name, event, sha256, size, content, error)
             values (${name}, 'invalid', ${read.sha256}, ${read.size}, ${content}, ${tx.json({ ...error })})`;
  }
  await tx`update prompts set file_state = 'invalid', file_error = ${tx.json({ ...error })},
           file_sha256 = ${read.sha256}, updated_at = now() where name = ${name}`;
  return result('invalid', true, { error });
}

/** Records a content found on disk during a save or a sync against the row as it is now (under its lock). */
function recorder(tx: TransactionSql, name: string, maxBytes: number): RecordDisplaced {
  return async (read) => {
    await applyFile(tx, name, (await lockPrompt(tx, name, false))!, read, maxBytes);
  };
}

/**
 * Records the file `<name>.yaml` as it is now: a new version when valid and different, an event when
 * invalid or gone. The file is read only after the row lock is held, so a read can never be older
 * than an API save that committed in the meantime.
 */
export async function syncPromptFile(
  sql: Sql,
  promptsDir: string,
  name: string,
  opts: { maxBytes: number },
): Promise<SyncResult> {
  assertPromptName(name);
  const file = promptFilePath(promptsDir, name);
  return sql.begin(async (tx) => {
    let row = await lockPrompt(tx, name, false);
    // Under the row lock no save is under way: a file set aside is what a crashed save left.
    if (row && (await settleLeftover(file, opts.maxBytes, recorder(tx, name, opts.maxBytes)))) {
      row = await lockPrompt(tx, name, false);
    }
    let read = await readPromptFile(file, opts.maxBytes);
    if (!row) {
      if (read.kind === 'missing') return { name, outcome: 'unchanged', changed: false, version: null };
      row = (await lockPrompt(tx, name, true))!;
      read = await readPromptFile(file, opts.maxBytes);
    }
    return applyFile(tx, name, row, read, opts.maxBytes);
  });
}

export interface SaveOptions {
  origin: PromptOrigin;
  /** The version the caller last saw (0: the prompt has none yet); stale means PromptConflictError. */
  ifMatch?: number;
  maxBytes: number;
}

/**
 * Saves a prompt from the API or the CLI. The file is written (atomically, fsynced) before the version
 * row commits, under the row lock: a crash in between leaves the file ahead of the database, and the
 * next scan records it with origin "file"; a stale file can never override an acknowledged save.
 */
export async function savePrompt(
  sql: Sql,
  promptsDir: string,
  name: string,
  text: string,
  opts: SaveOptions,
): Promise<SaveResult> {
  assertPromptName(name);
  const size = Buffer.byteLength(text);
  if (size > opts.maxBytes) {
    throw new PromptValidationError(
      `the prompt is ${size} bytes, more than the limit of ${opts.maxBytes} bytes (MAX_PROMPT_SIZE)`,
      1,
      1,
    );
  }
  if (text.includes('\u0000')) throw new PromptValidationError('the prompt holds a NUL character', 1, 1);
  parsePrompt(text, name);
  const sha256 = sha256Hex(text);
  const file = promptFilePath(promptsDir, name);
  const outcome = await sql.begin(async (tx): Promise<SaveResult | PromptConflictError> => {
    const record = recorder(tx, name, opts.maxBytes);
    await lockPrompt(tx, name, true);
    await settleLeftover(file, opts.maxBytes, record);
    let row = (await lockPrompt(tx, name, false))!;
    // A hand edit not scanned yet goes into history before it is overwritten, and makes If-Match stale.
    const onDisk = await readPromptFile(file, opts.maxBytes);
    if ((await applyFile(tx, name, row, onDisk, opts.maxBytes)).changed) {
      row = (await lockPrompt(tx, name, false))!;
    }
    if (opts.ifMatch !== undefined && opts.ifMatch !== (row.currentVersion ?? 0)) {
      // Returned, not thrown: the hand edit recorded above must commit even though this save is refused.
      return new PromptConflictError(name, row.currentVersion, opts.ifMatch);
    }
    if (onDisk.kind === 'missing' || onDisk.sha256 !== sha256) {
      // A hand edit that lands after the read above is recorded as it is swapped out, never lost (I5).
      await replacePromptFile(file, text, opts.maxBytes, record);
      row = (await lockPrompt(tx, name, false))!;
      if (row.fileState === 'deleted') {
        await tx`insert into prompt_events (name, event, sha256, size) values (${name}, 'recovered', ${sha256}, ${size})`;
      }
    }
    if (sha256 === row.currentSha256 && row.currentVersion !== null) {
      await tx`update prompts set file_state = 'ok', file_error = null, file_sha256 = ${sha256}, updated_at = now()
               where name = ${name}`;
      return { name, version: row.currentVersion, sha256, created: false };
    }
    const version = await insertVersion(tx, name, text, sha256, opts.origin);
    return { name, version, sha256, created: true };
  });
  if (outcome instanceof PromptConflictError) throw outcome;
  return outcome;
}

/** Makes an old version current again as a new version with origin "restore" (a no-op when it is current). */
export async function restoreVersion(
  sql: Sql,
  promptsDir: string,
  name: string,
  version: number,
  opts: { ifMatch?: number; maxBytes?: number } = {},
): Promise<SaveResult> {
  const old = await getVersion(sql, name, version);
  return savePrompt(sql, promptsDir, name, old.content, {
    origin: 'restore',
    ifMatch: opts.ifMatch,
    // The current limit, not the old content's size: a restored file over the limit would be invalid on disk.
    maxBytes: opts.maxBytes ?? DEFAULT_MAX_PROMPT_BYTES,
  });
}
