import type { Sql } from '../db/connection.ts';
import type { FileError, FileState, PromptOrigin } from './history-types.ts';
import { assertPromptName, type PromptDocument, parsePrompt } from './schema.ts';

export class PromptNotFoundError extends Error {
  override name = 'PromptNotFoundError';
  constructor(
    readonly promptName: string,
    readonly version?: number,
  ) {
    super(
      version === undefined
        ? `There is no prompt named ${promptName}.`
        : `Prompt ${promptName} has no version ${version}.`,
    );
  }
}

export interface PromptSummary {
  name: string;
  /** The last valid version in use; null while the prompt has never had a valid content. */
  version: number | null;
  sha256: string | null;
  title: string | null;
  model: string | null;
  tags: string[];
  fileState: FileState;
  fileError: FileError | null;
  updatedAt: Date;
}

export interface PromptDetail extends PromptSummary {
  content: string | null;
  document: PromptDocument | null;
}

export interface PromptVersionInfo {
  name: string;
  version: number;
  sha256: string;
  origin: PromptOrigin;
  size: number;
  createdAt: Date;
}

export interface PromptVersion extends PromptVersionInfo {
  content: string;
  /** Null when this old content no longer passes today's schema. */
  document: PromptDocument | null;
}

export interface PromptEvent {
  id: number;
  name: string;
  event: 'invalid' | 'deleted' | 'recovered';
  sha256: string | null;
  size: number | null;
  /** The invalid content as it was (base64 when error.contentEncoding says so); null when over the limit. */
  content: string | null;
  error: FileError | null;
  createdAt: Date;
}

interface PromptRow {
  name: string;
  version: number | null;
  sha256: string | null;
  content: string | null;
  fileState: FileState;
  fileError: FileError | null;
  updatedAt: Date;
}

function parseQuietly(content: string | null): PromptDocument | null {
  if (content === null) return null;
  try {
    return parsePrompt(content);
  } catch {
    return null;
  }
}

function toDetail(row: PromptRow): PromptDetail {
  const document = parseQuietly(row.content);
  return {
    name: row.name,
    version: row.version,
    sha256: row.sha256,
    title: document?.title ?? null,
    model: document?.model ?? null,
    tags: document?.tags ?? [],
    fileState: row.fileState,
    fileError: row.fileError,
    updatedAt: row.updatedAt,
    content: row.content,
    document,
  };
}

async function selectPrompts(sql: Sql, name?: string): Promise<PromptRow[]> {
  return sql<PromptRow[]>`
    select p.name, p.current_version as version, v.sha256, v.content, p.file_state as "fileState",
           p.file_error as "fileError", p.updated_at as "updatedAt"
    from prompts p
    left join prompt_versions v on v.name = p.name and v.version = p.current_version
    ${name === undefined ? sql`` : sql`where p.name = ${name}`}
    order by p.name`;
}

export async function listPrompts(sql: Sql): Promise<PromptSummary[]> {
  return (await selectPrompts(sql)).map((row) => {
    const { content: _content, document: _document, ...summary } = toDetail(row);
    return summary;
  });
}

export async function getPrompt(sql: Sql, name: string): Promise<PromptDetail> {
  assertPromptName(name);
  const [row] = await selectPrompts(sql, name);
  if (!row) throw new PromptNotFoundError(name);
  return toDetail(row);
}

async function assertExists(sql: Sql, name: string): Promise<void> {
  assertPromptName(name);
  const [row] = await sql`select 1 from prompts where name = ${name}`;
  if (!row) throw new PromptNotFoundError(name);
}

export async function listVersions(sql: Sql, name: string): Promise<PromptVersionInfo[]> {
  await assertExists(sql, name);
  return sql<PromptVersionInfo[]>`
    select name, version, sha256, origin, octet_length(content) as size, created_at as "createdAt"
    from prompt_versions where name = ${name} order by version`;
}

export async function getVersion(sql: Sql, name: string, version: number): Promise<PromptVersion> {
  assertPromptName(name);
  if (!Number.isSafeInteger(version) || version < 1) throw new PromptNotFoundError(name, version);
  const [row] = await sql<Omit<PromptVersion, 'document'>[]>`
    select name, version, sha256, origin, octet_length(content) as size, content, created_at as "createdAt"
    from prompt_versions where name = ${name} and version = ${version}`;
  if (!row) {
    await assertExists(sql, name);
    throw new PromptNotFoundError(name, version);
  }
  return { ...row, document: parseQuietly(row.content) };
}

export async function listEvents(sql: Sql, name: string): Promise<PromptEvent[]> {
  await assertExists(sql, name);
  return sql<PromptEvent[]>`
    select id, name, event, sha256, size, content, error, created_at as "createdAt"
    from prompt_events where name = ${name} order by id`;
}

/** How many prompts have their file in each state (ok, invalid, deleted). */
export async function countPromptsByFileState(sql: Sql): Promise<Map<string, number>> {
  const rows = await sql`select file_state, count(*)::int as n from prompts group by file_state`;
  return new Map(rows.map((row) => [row.file_state as string, row.n as number]));
}

export async function countPromptVersions(sql: Sql): Promise<number> {
  const [row] = await sql`select count(*)::int as n from prompt_versions`;
  return (row?.n as number) ?? 0;
}

/** Prompts whose file is invalid right now, with the error it was recorded with. */
export async function invalidPromptFiles(
  sql: Sql,
): Promise<Array<{ name: string; error: FileError | null }>> {
  const rows = await sql`select name, file_error from prompts where file_state = 'invalid' order by name`;
  return rows.map((row) => ({
    name: row.name as string,
    error: (row.file_error as FileError | null) ?? null,
  }));
}

/**
 * Prompts whose history is not every version from 1 to the newest, or whose current version is not in it
 * (a restore must bring back whole histories), and how many prompts there are.
 */
export async function historyGaps(sql: Sql): Promise<{ prompts: number; gaps: string[] }> {
  const gaps = await sql`
    select p.name, p.current_version, count(v.version)::int as versions, max(v.version) as newest
    from prompts p left join prompt_versions v on v.name = p.name group by p.name, p.current_version
    having count(v.version) <> coalesce(max(v.version), 0) or p.current_version > coalesce(max(v.version), 0)`;
  const [{ n: prompts } = { n: 0 }] = await sql`select count(*)::int as n from prompts`;
  return { prompts: prompts as number, gaps: gaps.map((g) => g.name as string) };
}
