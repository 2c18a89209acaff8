import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import { targetNames } from '../vault/targets.ts';
import { registerBackupMetrics } from './metrics-backups.ts';
import { registerGenerationMetrics } from './metrics-generations.ts';
import { registerHealthMetrics } from './metrics-health.ts';
import { registerIntegrityMetrics } from './metrics-integrity.ts';
import { registerObjectMetrics } from './metrics-objects.ts';
import { registerServiceMetrics } from './metrics-service.ts';

export interface Metrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
}

/**
 * Node's process metrics under the names every Prometheus client library gives them (process_…, nodejs_…; the
 * scrape's job label says whose they are), plus gauges read from PostgreSQL at scrape time, so every replica
 * reports the same truth.
 */
export function createMetrics(sql: Sql, config: Config): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client's sums of nodejs_active_handles/requests/resources are gauges named like counters, which
  // Prometheus's linter rejects; sum(nodejs_active_handles) is the same figure.
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ])
    registry.removeSingleMetric(name);
  const httpRequests = new Counter({
    name: 'trendgen_http_requests_total',
    help: 'HTTP requests answered, by route and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: 'trendgen_http_request_duration_seconds',
    help: 'Time to answer HTTP requests.',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  registerServiceMetrics(registry, sql);
  registerGenerationMetrics(registry, sql);
  registerBackupMetrics(registry, sql, targetNames(config));
  registerHealthMetrics(registry, sql, config);
  registerIntegrityMetrics(registry, sql);
  registerObjectMetrics(registry, sql);
  return { registry, httpRequests, httpDuration };
}
