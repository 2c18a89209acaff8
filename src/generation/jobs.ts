import type { Sql } from '../db/connection.ts';
import { trendToGenerate } from '../trends/trends.ts';

export const GENERATION_STATUSES = ['queued', 'running', 'succeeded', 'failed'] as const;
export type GenerationStatus = (typeof GENERATION_STATUSES)[number];

export interface GenerationOutput {
  variant: number;
  key: string;
  previewKey: string;
}

export interface Generation {
  id: string;
  userId: string;
  trend: string;
  promptName: string;
  promptVersion: number;
  params: Record<string, unknown>;
  variants: number;
  photoKey: string;
  status: GenerationStatus;
  attempts: number;
  error: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  outputs: GenerationOutput[];
}

export class GenerationNotFoundError extends Error {
  override name = 'GenerationNotFoundError';
  constructor(readonly id: string) {
    super(`The generation ${id} does not exist.`);
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function toGeneration(row: Record<string, unknown>, outputs: GenerationOutput[]): Generation {
  return {
    id: row.id as string,
    userId: row.user_id as string,
    trend: row.trend_slug as string,
    promptName: row.prompt_name as string,
    promptVersion: row.prompt_version as number,
    params: row.params as Record<string, unknown>,
    variants: row.variants as number,
    photoKey: row.photo_key as string,
    status: row.status as GenerationStatus,
    attempts: row.attempts as number,
    error: (row.error as string | null) ?? null,
    createdAt: row.created_at as Date,
    startedAt: (row.started_at as Date | null) ?? null,
    finishedAt: (row.finished_at as Date | null) ?? null,
    outputs,
  };
}

async function outputsFor(sql: Sql, ids: string[]): Promise<Map<string, GenerationOutput[]>> {
  const map = new Map<string, GenerationOutput[]>();
  if (ids.length === 0) return map;
  const rows = await sql`
    select generation_id, variant, key, preview_key from generation_outputs
    where generation_id = any(${ids}::uuid[]) order by generation_id, variant`;
  for (const row of rows) {
    const list = map.get(row.generation_id as string) ?? [];
    list.push({
      variant: row.variant as number,
      key: row.key as string,
      previewKey: row.preview_key as string,
    });
    map.set(row.generation_id as string, list);
  }
  return map;
}

export interface NewGeneration {
  userId: string;
  trend: string;
  variants: number;
  photoKey: string;
  idempotencyKey: string | undefined;
}

export class GenerationInputError extends Error {
  override name = 'GenerationInputError';
}

/**
 * Records an accepted generation, pinned to the prompt version in use now so that later prompt edits never
 * change it. With an idempotency key, a retry (even a concurrent one) returns the first generation.
 */
export async function createGeneration(
  sql: Sql,
  input: NewGeneration,
): Promise<{ generation: Generation; created: boolean }> {
  const result = await sql.begin(async (tx) => {
    const trend = await trendToGenerate(tx, input.trend);
    if (!trend) throw new GenerationInputError(`The trend ${input.trend} does not exist.`);
    if (trend.status !== 'active')
      throw new GenerationInputError(`The trend ${input.trend} is ${trend.status}, not active.`);
    if (trend.promptVersion === null) {
      throw new GenerationInputError(
        `The trend ${input.trend} has no valid prompt version to generate with.`,
      );
    }
    // Pinned to what was just checked: the trend's prompt and that prompt's version, read together.
    const [row] = await tx`
      insert into generations (user_id, trend_slug, prompt_name, prompt_version, params, variants, photo_key, idempotency_key)
      values (${input.userId}, ${trend.slug}, ${trend.promptName}, ${trend.promptVersion}, ${tx.json(trend.params)},
              ${input.variants}, ${input.photoKey}, ${input.idempotencyKey ?? null})
      on conflict (user_id, idempotency_key) do nothing
      returning id`;
    return row?.id as string | undefined;
  });
  if (result) return { generation: await getGeneration(sql, result), created: true };
  const [existing] = await sql`
    select id from generations where user_id = ${input.userId} and idempotency_key = ${input.idempotencyKey ?? null}`;
  if (!existing) throw new Error('An idempotent generation vanished between insert and read.');
  return { generation: await getGeneration(sql, existing.id as string), created: false };
}

export async function getGeneration(
  sql: Sql,
  id: string,
  options: { includeDeleted?: boolean } = {},
): Promise<Generation> {
  if (!UUID.test(id)) throw new GenerationNotFoundError(id);
  const [row] = options.includeDeleted
    ? await sql`select * from generations where id = ${id}`
    : await sql`select * from generations where id = ${id} and deleted_at is null`;
  if (!row) throw new GenerationNotFoundError(id);
  return toGeneration(row, (await outputsFor(sql, [id])).get(id) ?? []);
}

/** A user's generations, or everyone's (`userId` undefined), newest first. */
export async function listGenerations(
  sql: Sql,
  userId: string | undefined,
  limit = 100,
): Promise<Generation[]> {
  const rows = await sql`
    select * from generations
    where deleted_at is null ${userId === undefined ? sql`` : sql`and user_id = ${userId}`}
    order by created_at desc limit ${limit}`;
  const outputs = await outputsFor(
    sql,
    rows.map((r) => r.id as string),
  );
  return rows.map((row) => toGeneration(row, outputs.get(row.id as string) ?? []));
}

/** Adds to a counter that every process shares (read by /metrics). */
export async function bumpCounter(sql: Sql, name: string, label = '', by = 1): Promise<void> {
  await sql`
    insert into ops_counters (name, label, value) values (${name}, ${label}, ${by})
    on conflict (name, label) do update set value = ops_counters.value + ${by}`;
}
