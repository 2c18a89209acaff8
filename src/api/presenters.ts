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
