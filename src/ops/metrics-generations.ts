import { Counter, Gauge, type Registry, Summary } from 'prom-client';
import type { Sql } from '../db/connection.ts';
import {
  countGenerationsByStatus,
  generationTimeTotals,
  opsCounter,
  recentGenerationTimes,
} from '../generation/stats.ts';

const NAME = 'trendgen_generation_seconds';
const HELP =
  'Generation times by phase: queue (created to started) and finish (created to finished); quantiles over the last hour, sum and count since the beginning.';

type SummaryValues = Awaited<ReturnType<Summary<'phase' | 'quantile'>['get']>>['values'];

/**
 * A Prometheus summary read from PostgreSQL at scrape time instead of observed in this process: generations
 * finish in the workers, and every API replica must report the same. Quantiles cover the last hour (like a
 * client library's summary with a one-hour max age); `_sum` and `_count` cover every finished generation, so
 * `rate(_sum) / rate(_count)` is the mean over any window.
 */
class GenerationTimesSummary extends Summary<'phase' | 'quantile'> {
  constructor(
    registry: Registry,
    private readonly sql: Sql,
  ) {
    super({
      name: NAME,
      help: HELP,
      labelNames: ['phase'],
      percentiles: [0.5, 0.95],
      registers: [registry],
    });
  }

  override async get() {
    const [recent, totals] = await Promise.all([
      recentGenerationTimes(this.sql),
      generationTimeTotals(this.sql),
    ]);
    const values: SummaryValues = [];
    for (const phase of ['queue', 'finish'] as const) {
      if (recent) {
        const [p50, p95] =
          phase === 'queue' ? [recent.queueP50, recent.queueP95] : [recent.finishP50, recent.finishP95];
        values.push({ labels: { phase, quantile: 0.5 }, value: p50 });
        values.push({ labels: { phase, quantile: 0.95 }, value: p95 });
      }
      values.push({ metricName: `${NAME}_sum`, labels: { phase }, value: totals[phase].sum });
      values.push({ metricName: `${NAME}_count`, labels: { phase }, value: totals[phase].count });
    }
    // The base class supplies the name, help, type and aggregator; it has observed nothing, so no values.
    return { ...(await super.get()), values };
  }
}

/** Generations at scrape time: by state, their times, and the counters the workers and reconciler keep. */
export function registerGenerationMetrics(registry: Registry, sql: Sql): void {
  new Gauge({
    name: 'trendgen_generations',
    help: 'Generations by state.',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      for (const state of ['queued', 'running', 'succeeded', 'failed']) this.set({ state }, 0);
      for (const [state, n] of await countGenerationsByStatus(sql)) this.set({ state }, n);
    },
  });
  new GenerationTimesSummary(registry, sql);
  for (const [name, label, help] of [
    ['provider_errors', 'kind', 'Image provider errors, transient (retried) or permanent (failed at once).'],
    [
      'reconciler_repairs',
      'kind',
      'Generations the reconciler put back in the queue: requeued (job missing) or lease_expired (worker died).',
    ],
  ] as const) {
    new Counter({
      name: `trendgen_${name}_total`,
      help,
      labelNames: [label],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [value, n] of await opsCounter(sql, name)) this.inc({ [label]: value }, n);
      },
    });
  }
}
