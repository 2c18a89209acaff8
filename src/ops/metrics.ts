import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Sql } from '../db/connection.ts';
import {
  lastSuccessByTarget,
  latestDrill,
  latestFinishedRun,
  repositorySizes,
  runCountsByStatus,
} from '../vault/catalog.ts';

export interface Metrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
}

/** Process metrics plus gauges read from PostgreSQL at scrape time, so every replica reports the same truth. */
export function createMetrics(sql: Sql): Metrics {
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
  new Gauge({
    name: 'trendgen_objects',
    help: 'Live objects in the object store, by kind.',
    labelNames: ['kind'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const rows =
        await sql`select kind, count(*)::int as n from objects where deleted_at is null group by kind`;
      for (const row of rows) this.set({ kind: row.kind as string }, row.n as number);
    },
  });
  new Gauge({
    name: 'trendgen_object_bytes',
    help: 'Bytes of live objects in the object store.',
    registers: [registry],
    async collect() {
      const [row] =
        await sql`select coalesce(sum(size), 0)::bigint as bytes from objects where deleted_at is null`;
      this.set(Number(row?.bytes ?? 0));
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
      const rows = await sql`select file_state, count(*)::int as n from prompts group by file_state`;
      for (const row of rows) this.set({ state: row.file_state as string }, row.n as number);
    },
  });
  new Gauge({
    name: 'trendgen_prompt_versions',
    help: 'Prompt versions kept in the history.',
    registers: [registry],
    async collect() {
      const [row] = await sql`select count(*)::int as n from prompt_versions`;
      this.set((row?.n as number) ?? 0);
    },
  });
  new Gauge({
    name: 'trendgen_generations',
    help: 'Generations by state.',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      for (const state of ['queued', 'running', 'succeeded', 'failed']) this.set({ state }, 0);
      const rows =
        await sql`select status, count(*)::int as n from generations where deleted_at is null group by status`;
      for (const row of rows) this.set({ state: row.status as string }, row.n as number);
    },
  });
  new Gauge({
    name: 'trendgen_generation_seconds',
    help: 'Generations finished in the last hour: time in queue (created to started) and time to finish (created to finished), by quantile.',
    labelNames: ['phase', 'quantile'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const [row] = await sql`
        select percentile_cont(0.5) within group (order by extract(epoch from started_at - created_at)) as queue_p50,
               percentile_cont(0.95) within group (order by extract(epoch from started_at - created_at)) as queue_p95,
               percentile_cont(0.5) within group (order by extract(epoch from finished_at - created_at)) as finish_p50,
               percentile_cont(0.95) within group (order by extract(epoch from finished_at - created_at)) as finish_p95
        from generations where finished_at > now() - interval '1 hour'`;
      if (row?.queue_p50 == null) return;
      this.set({ phase: 'queue', quantile: '0.5' }, Number(row.queue_p50));
      this.set({ phase: 'queue', quantile: '0.95' }, Number(row.queue_p95));
      this.set({ phase: 'finish', quantile: '0.5' }, Number(row.finish_p50));
      this.set({ phase: 'finish', quantile: '0.95' }, Number(row.finish_p95));
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
        const rows = await sql`select label, value from ops_counters where name = ${name}`;
        for (const row of rows) this.inc({ [label]: row.label as string }, Number(row.value));
      },
    });
  }
  const hasTable = async (name: string) => {
    const [row] = await sql`select to_regclass(${name}) is not null as present`;
    return Boolean(row?.present);
  };
  new Gauge({
    name: 'trendgen_backup_last_success_timestamp_seconds',
    help: 'When the last backup that reached each target finished (Unix time).',
    labelNames: ['target'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      if (!(await hasTable('backup_runs'))) return;
      for (const [target, at] of await lastSuccessByTarget(sql)) this.set({ target }, at.getTime() / 1000);
    },
  });
  new Gauge({
    name: 'trendgen_backup_last_run',
    help: 'The last backup run: duration in seconds, bytes added, and 1 when it failed on any target.',
    labelNames: ['field'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      if (!(await hasTable('backup_runs'))) return;
      const run = await latestFinishedRun(sql);
      if (!run) return;
      this.set({ field: 'duration_seconds' }, (run.finishedAt!.getTime() - run.startedAt.getTime()) / 1000);
      this.set({ field: 'bytes_added' }, run.bytesAdded);
      this.set({ field: 'failed' }, run.status === 'succeeded' ? 0 : 1);
    },
  });
  new Gauge({
    name: 'trendgen_backup_repository',
    help: 'Each target after its last successful backup: snapshots held and bytes stored.',
    labelNames: ['target', 'field'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      if (!(await hasTable('backup_runs'))) return;
      for (const { target, snapshots, bytes } of await repositorySizes(sql)) {
        this.set({ target, field: 'snapshots' }, snapshots);
        this.set({ target, field: 'bytes' }, bytes);
      }
    },
  });
  new Gauge({
    name: 'trendgen_doctor_checks',
    help: "The scheduler's last doctor run: checks by status (OK, WARN, FAIL).",
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      if (!(await hasTable('doctor_reports'))) return;
      const [row] = await sql`select report from doctor_reports where id = 1`;
      const checks = (row?.report as { checks?: Array<{ status: string }> } | undefined)?.checks ?? [];
      for (const status of ['OK', 'WARN', 'FAIL'])
        this.set({ status }, checks.filter((c) => c.status === status).length);
    },
  });
  new Gauge({
    name: 'trendgen_backup_runs',
    help: 'Backup runs recorded, by outcome.',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      if (!(await hasTable('backup_runs'))) return;
      for (const [status, n] of await runCountsByStatus(sql)) this.set({ status }, n);
    },
  });
  new Gauge({
    name: 'trendgen_drill_last',
    help: 'The last restore drill: success time (Unix), recovery seconds of the last passed drill, and 1 when the last drill failed.',
    labelNames: ['field'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      if (!(await hasTable('drill_runs'))) return;
      const [passed, last] = await Promise.all([latestDrill(sql, ['passed']), latestDrill(sql)]);
      if (passed) {
        this.set({ field: 'success_timestamp_seconds' }, passed.finishedAt.getTime() / 1000);
        this.set({ field: 'recovery_seconds' }, Number(passed.recoverySeconds));
      }
      if (last) this.set({ field: 'failed' }, last.status === 'failed' ? 1 : 0);
    },
  });
  return { registry, httpRequests, httpDuration };
}
