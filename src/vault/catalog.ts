import type { Sql } from '../db/connection.ts';
import type { DrillReport } from './drill.ts';

export interface TargetOutcome {
  name: string;
  ok: boolean;
  error?: string;
  blobsAdded?: number;
  bytesAdded?: number;
  /** After the run: snapshots the target holds and the bytes of its blobs. */
  snapshots?: number;
  repositoryBytes?: number;
}

/** The backup catalog in PostgreSQL: best effort, since a backup must not fail because its own log could not be written. */
export async function recordRunStart(sql: Sql, tags: string[]): Promise<number | undefined> {
  try {
    const [row] = await sql`insert into backup_runs (tags) values (${tags}) returning id`;
    return Number(row!.id);
  } catch {
    return undefined;
  }
}

export async function recordRunEnd(
  sql: Sql,
  id: number | undefined,
  outcome: { snapshotId?: string; targets: TargetOutcome[]; bytesAdded: number; error?: string },
): Promise<void> {
  if (id === undefined) return;
  const okCount = outcome.targets.filter((t) => t.ok).length;
  const status = outcome.snapshotId
    ? okCount === outcome.targets.length
      ? 'succeeded'
      : 'partial'
    : 'failed';
  try {
    await sql`
      update backup_runs set finished_at = now(), status = ${status}, snapshot_id = ${outcome.snapshotId ?? null},
        targets = ${sql.json(outcome.targets as never)}, bytes_added = ${outcome.bytesAdded}, error = ${outcome.error ?? null}
      where id = ${id}`;
  } catch {
    // The run itself succeeded or failed on its own terms; the next run records again.
  }
}

/** Records a finished drill; best effort, like the backup catalog. */
export async function recordDrill(sql: Sql, target: string, report: DrillReport): Promise<void> {
  try {
    await sql`
      insert into drill_runs (finished_at, status, snapshot_id, target, recovery_seconds, reason, checks)
      values (now(), ${report.status}, ${report.snapshot.id}, ${target}, ${report.recoverySeconds}, ${report.reason ?? null},
              ${sql.json(report.checks as never)})`;
  } catch {
    // The drill's own verdict is printed and returned either way.
  }
}
