import { Gauge, type Registry } from 'prom-client';
import type { Sql } from '../db/connection.ts';
import { countLiveObjectsByKind, liveObjectBytes } from '../objects/queries.ts';
import { countPromptsByFileState, countPromptVersions } from '../prompts/index.ts';
import { lastDoctorStatuses } from './doctor/reports.ts';

/** The service's own state at scrape time: objects, prompts, the last doctor run (generations: metrics-generations.ts). */
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
}
