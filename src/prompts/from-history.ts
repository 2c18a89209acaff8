import { existsSync, rmSync } from 'node:fs';
import type { Sql } from '../db/connection.ts';
import { writeFileAtomicSync } from '../lib/files.ts';
import { promptFilePath, readPromptFile, sha256Hex } from './prompt-file.ts';

export interface FolderFromHistory {
  /** Files written with the bytes the history says the file held. */
  written: string[];
  /** Files removed: the history says the prompt's file was deleted. */
  removed: string[];
  /** Files already as the history says, or of prompts the history does not know (kept as they are). */
  kept: number;
}

interface FileRow {
  name: string;
  fileState: 'ok' | 'invalid' | 'deleted';
  fileSha256: string | null;
  /** The bytes of the content whose hash is file_sha256: a version, or an invalid content's event. */
  content: string | null;
  encoding: string | null;
  /** The current version, for a file whose own bytes the history did not keep. */
  current: string | null;
}

/** Every prompt's file as the database last saw it, with the bytes it held where the history has them. */
async function filesInHistory(sql: Sql): Promise<FileRow[]> {
  return await sql<FileRow[]>`
    select p.name, p.file_state as "fileState", p.file_sha256 as "fileSha256",
      coalesce(
        (select v.content from prompt_versions v where v.name = p.name and v.sha256 = p.file_sha256
          order by v.version desc limit 1),
        (select e.content from prompt_events e where e.name = p.name and e.event = 'invalid'
          and e.sha256 = p.file_sha256 and e.content is not null order by e.id desc limit 1)) as content,
      (select e.error->>'contentEncoding' from prompt_events e where e.name = p.name and e.event = 'invalid'
        and e.sha256 = p.file_sha256 and e.content is not null
        and not exists (select 1 from prompt_versions v where v.name = p.name and v.sha256 = p.file_sha256)
        order by e.id desc limit 1) as encoding,
      (select v.content from prompt_versions v where v.name = p.name and v.version = p.current_version) as current
    from prompts p order by p.name`;
}

/**
 * Writes the prompts folder `dir` from the prompt history of a database: every prompt's file as the database
 * last saw it (its current version, or the invalid content it recorded), and no file where the database saw
 * it deleted. Files of prompts the history does not know are left as they are. After a restore the database
 * is the recovery point, so the next scan of the folder records nothing new and version numbers go on from
 * where the restored history ends. Each file is written atomically; the caller makes the folder durable.
 */
export async function writePromptsFromHistory(
  sql: Sql,
  dir: string,
  opts: { maxBytes: number },
): Promise<FolderFromHistory> {
  const result: FolderFromHistory = { written: [], removed: [], kept: 0 };
  for (const row of await filesInHistory(sql)) {
    const file = promptFilePath(dir, row.name);
    if (row.fileState === 'deleted') {
      if (existsSync(file)) {
        rmSync(file, { force: true });
        result.removed.push(row.name);
      } else result.kept++;
      continue;
    }
    const bytes =
      row.content !== null
        ? Buffer.from(row.content, row.encoding === 'base64' ? 'base64' : 'utf8')
        : row.current !== null
          ? Buffer.from(row.current, 'utf8')
          : undefined;
    // Neither the file's bytes nor a version: only the archive knows this file.
    if (bytes === undefined) {
      result.kept++;
      continue;
    }
    const onDisk = await readPromptFile(file, opts.maxBytes);
    if (onDisk.kind !== 'missing' && onDisk.sha256 === sha256Hex(bytes)) {
      result.kept++;
      continue;
    }
    writeFileAtomicSync(file, bytes);
    result.written.push(row.name);
  }
  return result;
}
