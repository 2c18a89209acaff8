import type { Sql } from '../../src/db/connection.ts';
import { waitFor } from '../../src/lib/process.ts';
import { SAMPLE_PROMPT } from './api.ts';
import { generationForm, samplePhoto } from './generation.ts';

/**
 * Generations sent through the public API of real `trendgen serve` processes, and what PostgreSQL and the
 * workers' logs say became of each: the exactly-once checks of the Redis failover and scale-out tests.
 */

export const LOAD_TREND = 'load-portrait';

/** A prompt on the offline renderer at its smallest size, and a trend on it. */
export async function seedLoadTrend(baseUrl: string, admin: Record<string, string>): Promise<void> {
  const prompt = SAMPLE_PROMPT(LOAD_TREND)
    .replace('model: gpt-image-1', 'model: local')
    .replace('size: medium', 'size: small');
  const put = await fetch(`${baseUrl}/api/v1/prompts/${LOAD_TREND}`, {
    method: 'PUT',
    headers: { ...admin, 'content-type': 'application/yaml' },
    body: prompt,
  });
  if (!put.ok) throw new Error(`prompt: ${put.status} ${await put.text()}`);
  const trend = await fetch(`${baseUrl}/api/v1/trends`, {
    method: 'POST',
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({ slug: LOAD_TREND, title: 'Load portrait', prompt: LOAD_TREND }),
  });
  if (trend.status !== 201) throw new Error(`trend: ${trend.status} ${await trend.text()}`);
}

export interface Accepted {
  id: string;
  /** When the request was sent and when its 202 came back. */
  sentAt: number;
  ackedAt: number;
}

/**
 * `clients` loops posting generations (round robin over `baseUrls`) until `stop()` or `count` are reached;
 * every 202 is recorded. A refused or failed request is counted, never retried: it promised nothing.
 */
export function generationLoad(options: {
  baseUrls: string[];
  client: Record<string, string>;
  clients: number;
  count?: number;
  variants?: number;
  pauseMs?: number;
}) {
  const accepted: Accepted[] = [];
  const refused: string[] = [];
  let running = true;
  let sent = 0;
  const photos = Promise.all([1, 2, 3].map((seed) => samplePhoto(seed, 48)));
  const loop = async (index: number) => {
    const images = await photos;
    while (running && (options.count === undefined || sent < options.count)) {
      const n = sent++;
      const form = generationForm(
        { trend: LOAD_TREND, user: `user-${index}`, variants: String(options.variants ?? 1) },
        images[n % images.length]!,
      );
      const sentAt = Date.now();
      try {
        const response = await fetch(`${options.baseUrls[n % options.baseUrls.length]}/api/v1/generations`, {
          method: 'POST',
          headers: { ...options.client, 'content-type': form.contentType },
          body: form.payload,
          signal: AbortSignal.timeout(30_000),
        });
        if (response.status === 202) {
          accepted.push({ id: ((await response.json()) as { id: string }).id, sentAt, ackedAt: Date.now() });
        } else refused.push(`${response.status} ${await response.text()}`);
      } catch (error) {
        refused.push((error as Error).message);
      }
      if (options.pauseMs) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    }
  };
  const loops = Array.from({ length: options.clients }, (_, i) => loop(i));
  return {
    accepted,
    refused,
    /** Resolves when every loop has ended (at `count`, or after `stop`). */
    done: Promise.all(loops).then(() => undefined),
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

export interface GenerationEnd {
  id: string;
  status: string;
  attempts: number;
  outputs: number;
  variants: number;
}

/** Waits until none of `ids` is queued or running any more, then returns how each ended. */
export async function waitForEnds(sql: Sql, ids: string[], timeoutMs: number): Promise<GenerationEnd[]> {
  return await waitFor(
    `${ids.length} generations to end`,
    async () => {
      const rows = await sql<GenerationEnd[]>`
        select g.id, g.status, g.attempts, g.variants,
          (select count(*)::int from generation_outputs o where o.generation_id = g.id) as outputs
        from generations g where g.id = any(${ids}::uuid[])`;
      return rows.length === ids.length &&
        rows.every((r) => r.status === 'succeeded' || r.status === 'failed')
        ? rows
        : undefined;
    },
    timeoutMs,
    250,
  );
}

/** How many times each generation was finished, per the workers' `generation succeeded` log lines. */
export function successesInLogs(outputs: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const output of outputs) {
    for (const line of output.split('\n')) {
      if (!line.includes('"generation succeeded"')) continue;
      try {
        const id = (JSON.parse(line) as { generation?: string }).generation;
        if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
      } catch {
        // A line cut by the buffer's end: the next read holds it whole.
      }
    }
  }
  return counts;
}

export const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
};
