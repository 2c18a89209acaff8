import { Counter, Gauge, type Registry } from 'prom-client';
import type { Sql } from '../db/connection.ts';
import { countGenerationsByStatus, opsCounter, recentGenerationTimes } from '../generation/stats.ts';
import { countLiveObjectsByKind, liveObjectBytes } from '../objects/queries.ts';
import { countPromptsByFileState, countPromptVersions } from '../prompts/index.ts';
import { lastDoctorStatuses } from './doctor/reports.ts';

/** The service's own state at scrape time: objects, prompts, generations, shared counters, the last doctor run. */
export function registerServiceMetrics(registry: Registry, sql: Sql): void {
  new Gauge({
    name: 'trendgen_objects',
    help: 'Live objects in the object store, by kind.',
    labelNames: ['kind'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const [kind, n] of await countLiveObjectsByKind(sql)) this.set({ kind }, n);
    },
  });
  new Gauge({
    name: 'trendgen_object_bytes',
    help: 'Bytes of live objects in the object store.',
    registers: [registry],
    async collect() {
      this.set(await liveObjectBytes(sql));
    },
  });
  new Gauge({
    name: 'trendgen_prompt_files',
    help: 'Prompt files by state: ok, invalid (the last valid version stays in use) or deleted.',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const state of ['ok', 'invalid', 'deleted']) this.set({ state }, 0);
      for (const [state, n] of await countPromptsByFileState(sql)) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'trendgen_prompt_versions',
    help: 'Prompt versions kept in the history.',
    registers: [registry],
    async collect() {
      this.set(await countPromptVersions(sql));
    },
  });
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
  new Gauge({
    name: 'trendgen_generation_seconds',
    help: 'Generations finished in the last hour: time in queue (created to started) and time to finish (created to finished), by quantile.',
    labelNames: ['phase', 'quantile'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const times = await recentGenerationTimes(sql);
      if (!times) return;
      this.set({ phase: 'queue', quantile: '0.5' }, times.queueP50);
      this.set({ phase: 'queue', quantile: '0.95' }, times.queueP95);
      this.set({ phase: 'finish', quantile: '0.5' }, times.finishP50);
      this.set({ phase: 'finish', quantile: '0.95' }, times.finishP95);
    },
  });
  new Gauge({
    name: 'trendgen_doctor_checks',
    help: "The scheduler's last doctor run: checks by status (OK, WARN, FAIL).",
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const statuses = await lastDoctorStatuses(sql);
      for (const status of ['OK', 'WARN', 'FAIL'])
        this.set({ status }, statuses.filter((s) => s === status).length);
    },
  });
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
