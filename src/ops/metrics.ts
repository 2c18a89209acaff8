import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import type { Sql } from '../db/connection.ts';
import { registerBackupMetrics } from './metrics-backups.ts';
import { registerServiceMetrics } from './metrics-service.ts';

export interface Metrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
}

/**
 * Process metrics plus gauges read from PostgreSQL at scrape time, so every replica reports the same truth;
 * `targets` are the backup targets whose deletion ledger lag is reported.
 */
export function createMetrics(sql: Sql, targets: string[]): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'trendgen_process_' });
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
  registerBackupMetrics(registry, sql, targets);
  return { registry, httpRequests, httpDuration };
}
