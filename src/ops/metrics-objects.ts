import { Counter, type Registry } from 'prom-client';
import type { Sql } from '../db/connection.ts';
import { purgeTotals } from '../objects/purge.ts';

const REASONS = ['tombstoned', 'orphan', 'leftover'] as const;

/**
 * What the collector removed (I3), read from PostgreSQL at scrape time: the scheduler removes, every API replica
 * reports. The totals are written in the same transaction as each removal, so a crash never counts one twice.
 */
export function registerObjectMetrics(registry: Registry, sql: Sql): void {
  const hasTable = async () => {
    const [row] = await sql`select to_regclass('object_purge_totals') is not null as present`;
    return Boolean(row?.present);
  };
  for (const [field, name, help] of [
    [
      'items',
      'trendgen_objects_purged_total',
      "Objects and files the collector removed: tombstoned (deleted, no restorable state needs them), orphan (blob without a row), leftover (crashed writers' temp files and scratch folders).",
    ],
    ['bytes', 'trendgen_objects_purged_bytes_total', 'Bytes the collector removed, by the same reasons.'],
  ] as const) {
    new Counter({
      name,
      help,
      labelNames: ['reason'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        for (const reason of REASONS) this.inc({ reason }, 0);
        if (!(await hasTable())) return;
        for (const row of await purgeTotals(sql)) this.inc({ reason: row.reason }, row[field]);
      },
    });
  }
}
