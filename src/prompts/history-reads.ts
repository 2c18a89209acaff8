import type { Sql } from '../db/connection.ts';
import type { FileError, FileState, PromptOrigin } from './history.ts';
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
