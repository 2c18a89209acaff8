import { Gauge, type Registry } from 'prom-client';
import type { Sql } from '../db/connection.ts';
import {
  lastSuccessByTarget,
  latestDrill,
  latestFinishedRun,
  repositorySizes,
  runCountsByStatus,
} from '../vault/catalog.ts';
import { ledgerDebts } from '../vault/ledger-queue.ts';
import { streamedTargetsStatus } from '../vault/stream/objects-status.ts';
import { readWalStatus } from '../vault/wal/status.ts';

/** How old the newest moment each source can be restored to on each target is (I11). */
function registerRecoveryPointMetric(
  registry: Registry,
  sql: Sql,
  hasTable: (name: string) => Promise<boolean>,
): void {
  new Gauge({
    name: 'trendgen_recovery_point_lag_seconds',
    help: 'How far behind the newest write the newest recoverable moment is, per source and backup target.',
    labelNames: ['source', 'target'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      if (await hasTable('wal_stream_status')) {
        for (const row of await readWalStatus(sql)) {
          if (row.lagSeconds !== null) this.set({ source: 'postgres', target: row.target }, row.lagSeconds);
        }
      }
      if (await hasTable('object_stream_targets')) {
        for (const { target, lagSeconds } of await streamedTargetsStatus(sql)) {
          if (lagSeconds !== undefined) this.set({ source: 'objects', target }, lagSeconds);
        }
      }
    },
  });
}

/** The backup catalog at scrape time: last success per target, the last run, repository sizes, drills. */
export function registerBackupMetrics(registry: Registry, sql: Sql, targets: string[]): void {
  // The catalog's tables come with migrations 0003 and 0004; a database not migrated that far reports nothing.
  const hasTable = async (name: string) => {
    const [row] = await sql`select to_regclass(${name}) is not null as present`;
    return Boolean(row?.present);
  };
  registerRecoveryPointMetric(registry, sql, hasTable);
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
    name: 'trendgen_deletion_ledger_lag_seconds',
    help: "Seconds since the oldest user-data deletion not yet in each target's deletion ledger; 0 when none is owed.",
    labelNames: ['target'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      if (!(await hasTable('deletion_ledger_writes'))) return;
      for (const debt of await ledgerDebts(sql, targets)) this.set({ target: debt.target }, debt.lagSeconds);
    },
  });
  new Gauge({
    name: 'trendgen_deletion_ledger_pending',
    help: "User-data deletions not yet in each target's deletion ledger.",
    labelNames: ['target'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      if (!(await hasTable('deletion_ledger_writes'))) return;
      for (const debt of await ledgerDebts(sql, targets)) this.set({ target: debt.target }, debt.pending);
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
}
