import { z } from 'zod';
import type { Sql, TransactionSql } from '../db/connection.ts';
import { liveObjectsByKey } from '../objects/queries.ts';

export const TREND_STATUSES = ['active', 'hidden', 'archived'] as const;

const slug = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'must be lower-case letters, digits and dashes (1–64)');
const params = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

export const trendInput = z
  .object({
    slug,
    title: z.string().trim().min(1).max(200),
    description: z.string().max(5000).optional(),
    emoji: z.string().max(16).nullable().optional(),
    prompt: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must name a prompt'),
    params: params.optional(),
    status: z.enum(TREND_STATUSES).optional(),
    position: z.number().int().min(-1_000_000).max(1_000_000).optional(),
  })
  .strict();

export const trendPatch = trendInput.omit({ slug: true }).partial().strict();

export type TrendInput = z.infer<typeof trendInput>;
export type TrendPatch = z.infer<typeof trendPatch>;

export interface Trend {
  slug: string;
  title: string;
  description: string;
  emoji: string | null;
  prompt: string;
  params: Record<string, string | number | boolean>;
  status: (typeof TREND_STATUSES)[number];
  position: number;
  example: { key: string; sha256: string; size: number; contentType: string } | null;
  createdAt: Date;
  updatedAt: Date;
}

export class TrendNotFoundError extends Error {
  override name = 'TrendNotFoundError';
  constructor(readonly slug: string) {
    super(`The trend ${slug} does not exist.`);
  }
}

export class TrendConflictError extends Error {
  override name = 'TrendConflictError';
}

/** The prompt a trend names must exist: a trend without its prompt could never generate. */
export class UnknownPromptError extends Error {
  override name = 'UnknownPromptError';
  constructor(readonly prompt: string) {
    super(`The prompt ${prompt} does not exist: create it first (PUT /api/v1/prompts/${prompt}).`);
  }
}

type Example = NonNullable<Trend['example']>;

function toTrend(row: Record<string, unknown>, example: Omit<Example, 'key'> | undefined): Trend {
  return {
    slug: row.slug as string,
    title: row.title as string,
    description: row.description as string,
    emoji: (row.emoji as string | null) ?? null,
    prompt: row.prompt_name as string,
    params: row.params as Trend['params'],
    status: row.status as Trend['status'],
    position: row.position as number,
    example: row.example_key && example ? { key: row.example_key as string, ...example } : null,
    createdAt: row.created_at as Date,
    updatedAt: row.updated_at as Date,
  };
}

function mapForeignKey(error: unknown, prompt: string | undefined): never {
  const code = (error as { code?: string; constraint_name?: string }).code;
  if (code === '23503' && prompt) throw new UnknownPromptError(prompt);
  throw error;
}

/** Trends with their example object, looked up in one batch; a tombstoned example shows as none. */
async function withExamples(sql: Sql, rows: Array<Record<string, unknown>>): Promise<Trend[]> {
  const keys = [
    ...new Set(rows.map((row) => row.example_key as string | null).filter((key) => key !== null)),
  ];
  const examples = await liveObjectsByKey(sql, keys);
  return rows.map((row) => toTrend(row, examples.get(row.example_key as string)));
}

export async function listTrends(sql: Sql, options: { includeHidden?: boolean } = {}): Promise<Trend[]> {
  const rows = options.includeHidden
    ? await sql`select * from trends order by position, slug`
    : await sql`select * from trends where status = 'active' order by position, slug`;
  return await withExamples(sql, rows);
}

export async function getTrend(sql: Sql, slugValue: string): Promise<Trend> {
  const [row] = await sql`select * from trends where slug = ${slugValue}`;
  if (!row) throw new TrendNotFoundError(slugValue);
  const [trend] = await withExamples(sql, [row]);
  return trend!;
}

export async function createTrend(sql: Sql, input: TrendInput): Promise<Trend> {
  try {
    const [row] = await sql`
      insert into trends (slug, title, description, emoji, prompt_name, params, status, position)
      values (${input.slug}, ${input.title}, ${input.description ?? ''}, ${input.emoji ?? null}, ${input.prompt},
              ${sql.json(input.params ?? {})}, ${input.status ?? 'active'}, ${input.position ?? 0})
      on conflict (slug) do nothing
      returning slug`;
    if (!row) throw new TrendConflictError(`The trend ${input.slug} already exists: change it with PATCH.`);
  } catch (error) {
    mapForeignKey(error, input.prompt);
  }
  return await getTrend(sql, input.slug);
}

export async function updateTrend(sql: Sql, slugValue: string, patch: TrendPatch): Promise<Trend> {
  const columns: Record<string, unknown> = {};
  if (patch.title !== undefined) columns.title = patch.title;
  if (patch.description !== undefined) columns.description = patch.description;
  if (patch.emoji !== undefined) columns.emoji = patch.emoji;
  if (patch.prompt !== undefined) columns.prompt_name = patch.prompt;
  if (patch.params !== undefined) columns.params = sql.json(patch.params);
  if (patch.status !== undefined) columns.status = patch.status;
  if (patch.position !== undefined) columns.position = patch.position;
  try {
    const rows =
      Object.keys(columns).length === 0
        ? await sql`select slug from trends where slug = ${slugValue}`
        : await sql`update trends set ${sql(columns as Record<string, never>)}, updated_at = now() where slug = ${slugValue} returning slug`;
    if (rows.length === 0) throw new TrendNotFoundError(slugValue);
  } catch (error) {
    mapForeignKey(error, patch.prompt);
  }
  return await getTrend(sql, slugValue);
}

/** Points a trend at an example object; the object row exists already (I2), enforced by a foreign key. */
export async function setTrendExample(sql: Sql, slugValue: string, objectKey: string): Promise<Trend> {
  const rows = await sql`
    update trends set example_key = ${objectKey}, updated_at = now() where slug = ${slugValue} returning slug`;
  if (rows.length === 0) throw new TrendNotFoundError(slugValue);
  return await getTrend(sql, slugValue);
}

/** Which of `keys` some trend shows as its example (such an object must stay, whoever else used it). */
export async function exampleKeysAmong(sql: Sql | TransactionSql, keys: string[]): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const rows = await sql`select example_key from trends where example_key = any(${keys})`;
  return new Set(rows.map((row) => row.example_key as string));
}

export interface TrendToGenerate {
  slug: string;
  status: Trend['status'];
  params: Trend['params'];
  promptName: string;
  /** The prompt's current version, null while it has never had a valid content. */
  promptVersion: number | null;
}

/**
 * What a new generation is pinned to: the trend with its prompt's current version, read in one statement so
 * that the prompt and the version come from the same moment even while the trend is moved to another prompt
 * or the prompt is saved. (The one read here across owners: trends.prompt_name references prompts.)
 */
export async function trendToGenerate(
  sql: Sql | TransactionSql,
  slugValue: string,
): Promise<TrendToGenerate | undefined> {
  const [row] = await sql`
    select t.slug, t.status, t.params, t.prompt_name, p.current_version
    from trends t join prompts p on p.name = t.prompt_name where t.slug = ${slugValue}`;
  if (!row) return undefined;
  return {
    slug: row.slug as string,
    status: row.status as Trend['status'],
    params: row.params as Trend['params'],
    promptName: row.prompt_name as string,
    promptVersion: (row.current_version as number | null) ?? null,
  };
}
