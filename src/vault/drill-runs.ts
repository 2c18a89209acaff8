import type { Sql } from '../db/connection.ts';
import type { DrillOutcome } from './catalog.ts';

/** A drill as the console shows it: running ones included, with every check. */
export interface DrillRunView {
  id: number;
  status: 'running' | 'passed' | 'failed';
  startedAt: string;
  finishedAt: string | null;
  snapshotId: string | null;
  target: string | null;
  recoverySeconds: number | null;
  reason: string | null;
  checks: Array<{ name: string; ok: boolean; detail: string }>;
}

/** A drill that has started: visible as running until `finishDrillRun`. */
export async function startDrillRun(sql: Sql, target: string): Promise<number> {
  const [row] = await sql`insert into drill_runs (target) values (${target}) returning id`;
  return Number(row!.id);
}

export async function finishDrillRun(sql: Sql, id: number, report: DrillOutcome): Promise<void> {
  await sql`
    update drill_runs set finished_at = now(), status = ${report.status}, snapshot_id = ${report.snapshot.id},
      recovery_seconds = ${report.recoverySeconds}, reason = ${report.reason ?? null},
      checks = ${sql.json(report.checks as never)}
    where id = ${id}`;
}

/**
 * A drill whose process died never finishes its row: after `abandonAfterSeconds` it shows as failed with
 * that reason, rather than running forever.
 */
export async function listDrills(
  sql: Sql,
  limit = 20,
  abandonAfterSeconds = 6 * 3600,
): Promise<DrillRunView[]> {
  const rows = await sql<
    Array<{
      id: string;
      status: DrillRunView['status'];
      started_at: Date;
      finished_at: Date | null;
      snapshot_id: string | null;
      target: string | null;
      recovery_seconds: number | null;
      reason: string | null;
      checks: DrillRunView['checks'];
      abandoned: boolean;
    }>
  >`
    select id, status, started_at, finished_at, snapshot_id, target, recovery_seconds, reason, checks,
           status = 'running' and started_at < now() - make_interval(secs => ${abandonAfterSeconds}) as abandoned
    from drill_runs order by started_at desc, id desc limit ${limit}`;
  return rows.map((row) => ({
    id: Number(row.id),
    status: row.abandoned ? 'failed' : row.status,
    startedAt: row.started_at.toISOString(),
    finishedAt: row.finished_at?.toISOString() ?? null,
    snapshotId: row.snapshot_id,
    target: row.target,
    recoverySeconds: row.recovery_seconds,
    reason: row.abandoned ? 'The drill never finished: its process stopped while it ran.' : row.reason,
    checks: row.checks ?? [],
  }));
}
