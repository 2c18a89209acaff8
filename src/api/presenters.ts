import type { Generation } from '../generation/jobs.ts';
import type { ObjectRecord } from '../objects/store.ts';
import type { Trend } from '../trends/trends.ts';

export function objectUrl(key: string): string {
  return `/api/v1/objects/${key}`;
}

export function presentTrend(trend: Trend) {
  return {
    slug: trend.slug,
    title: trend.title,
    description: trend.description,
    emoji: trend.emoji,
    prompt: trend.prompt,
    params: trend.params,
    status: trend.status,
    position: trend.position,
    example: trend.example ? { ...trend.example, url: objectUrl(trend.example.key) } : null,
    createdAt: trend.createdAt.toISOString(),
    updatedAt: trend.updatedAt.toISOString(),
  };
}

export function presentObject(record: ObjectRecord) {
  return {
    key: record.key,
    sha256: record.sha256,
    size: record.size,
    contentType: record.contentType,
    url: objectUrl(record.key),
  };
}

export function presentGeneration(generation: Generation) {
  return {
    id: generation.id,
    status: generation.status,
    user: generation.userId,
    trend: generation.trend,
    prompt: generation.promptName,
    promptVersion: generation.promptVersion,
    variants: generation.variants,
    attempts: generation.attempts,
    outputs: generation.outputs.map((output) => ({
      variant: output.variant,
      key: output.key,
      previewKey: output.previewKey,
      url: objectUrl(output.key),
      previewUrl: objectUrl(output.previewKey),
    })),
    ...(generation.error ? { error: generation.error } : {}),
    createdAt: generation.createdAt.toISOString(),
    startedAt: generation.startedAt?.toISOString() ?? null,
    finishedAt: generation.finishedAt?.toISOString() ?? null,
  };
}
