import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import { scheduleInterval } from '../lib/schedule-interval.ts';
import { targetNames } from './targets.ts';

/**
 * The backup catalog: the only module that reads or writes `backup_runs` and `drill_runs`. Every process
 * (CLI, API, scheduler) records its runs here, and health, alerts, doctor and metrics read them here, so
 * that they agree on what happened and on what counts as stale (I10).
 */

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

export interface BackupRun {
  id: number;
  startedAt: Date;
  finishedAt: Date | null;
  status: string;
  snapshotId: string | null;
  tags: string[];
  targets: TargetOutcome[];
  bytesAdded: number;
  error: string | null;
}

export interface DrillRun {
  status: 'passed' | 'failed';
  startedAt: Date;
  finishedAt: Date;
  snapshotId: string | null;
  target: string | null;
  recoverySeconds: number | null;
  reason: string | null;
}

/** Best effort, since a backup must not fail because its own log could not be written. */
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
  outcome: { snapshotId?: string | undefined; targets: TargetOutcome[]; bytesAdded: number; error?: string },
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

/** Records a backup run around `run`, whoever started it: the one place a run enters the catalog. */
export async function recordedRun<
  T extends { snapshotId: string | undefined; targets: TargetOutcome[]; bytesAdded: number },
>(sql: Sql, tags: string[], run: () => Promise<T>): Promise<T> {
  const id = await recordRunStart(sql, tags);
  let result: T;
  try {
    result = await run();
  } catch (error) {
    await recordRunEnd(sql, id, { targets: [], bytesAdded: 0, error: (error as Error).message });
    throw error;
  }
  await recordRunEnd(sql, id, {
    snapshotId: result.snapshotId,
    targets: result.targets,
    bytesAdded: result.bytesAdded,
  });
  return result;
}

function toRun(row: Record<string, unknown>): BackupRun {
  return {
    id: Number(row.id),
    startedAt: row.started_at as Date,
    finishedAt: (row.finished_at as Date | null) ?? null,
    status: row.status as string,
    snapshotId: (row.snapshot_id as string | null) ?? null,
    tags: (row.tags as string[]) ?? [],
    targets: (row.targets as TargetOutcome[] | null) ?? [],
    bytesAdded: Number(row.bytes_added ?? 0),
    error: (row.error as string | null) ?? null,
  };
}

/** Newest first. */
export async function listRuns(sql: Sql, limit = 100): Promise<BackupRun[]> {
  const rows = await sql`
    select id, started_at, finished_at, status, snapshot_id, tags, targets, bytes_added, error
    from backup_runs order by id desc limit ${limit}`;
  return rows.map(toRun);
}

/** Runs that started at or after `since`, oldest first: the console's timeline. */
export async function runsSince(sql: Sql, since: Date, limit = 2000): Promise<BackupRun[]> {
  const rows = await sql`
    select id, started_at, finished_at, status, snapshot_id, tags, targets, bytes_added, error
    from backup_runs where started_at >= ${since} order by started_at, id limit ${limit}`;
  return rows.map(toRun);
}

/** Snapshot ids this service's own backups reported: what it vouches for when a repository gets its key. */
export async function snapshotIdsTaken(sql: Sql): Promise<string[]> {
  const rows = await sql`
    select distinct snapshot_id from backup_runs
    where snapshot_id is not null and status in ('succeeded', 'partial')`;
  return rows.map((row) => row.snapshot_id as string);
}

/** The newest run that has finished, however it ended. */
export async function latestFinishedRun(sql: Sql): Promise<BackupRun | undefined> {
  const [row] = await sql`
    select id, started_at, finished_at, status, snapshot_id, tags, targets, bytes_added, error
    from backup_runs where finished_at is not null order by finished_at desc, id desc limit 1`;
  return row ? toRun(row) : undefined;
}

/** The newest run that reached `target`. */
export async function latestSuccessOn(sql: Sql, target: string): Promise<BackupRun | undefined> {
  const [row] = await sql`
    select id, started_at, finished_at, status, snapshot_id, tags, targets, bytes_added, error
    from backup_runs
    where finished_at is not null
      and targets @> jsonb_build_array(jsonb_build_object('name', ${target}::text, 'ok', true))
    order by finished_at desc limit 1`;
  return row ? toRun(row) : undefined;
}

/** When each target was last reached by a backup; ages count from the end of a run. */
export async function lastSuccessByTarget(sql: Sql): Promise<Map<string, Date>> {
  const rows = await sql`
    select t->>'name' as target, max(r.finished_at) as at
    from backup_runs r, jsonb_array_elements(r.targets) t where (t->>'ok')::boolean group by 1`;
  return new Map(rows.map((row) => [row.target as string, row.at as Date]));
}

/** Each target's repository after its last successful backup: snapshots held and bytes stored. */
export async function repositorySizes(
  sql: Sql,
): Promise<Array<{ target: string; snapshots: number; bytes: number }>> {
  const rows = await sql`
    select distinct on (t->>'name') t->>'name' as target, t->>'snapshots' as snapshots, t->>'repositoryBytes' as bytes
    from backup_runs r, jsonb_array_elements(r.targets) t
    where (t->>'ok')::boolean and t ? 'snapshots' order by t->>'name', r.id desc`;
  return rows.map((row) => ({
    target: row.target as string,
    snapshots: Number(row.snapshots),
    bytes: Number(row.bytes),
  }));
}

export async function runCountsByStatus(sql: Sql): Promise<Map<string, number>> {
  const rows = await sql`select status, count(*)::int as n from backup_runs group by status`;
  return new Map(rows.map((row) => [row.status as string, row.n as number]));
}

export interface TargetFreshness {
  target: string;
  lastSuccessAt: Date | undefined;
  ageMs: number | undefined;
  /** Never reached, or last reached more than twice the schedule's interval ago. */
  stale: boolean;
}

/**
 * The one staleness rule (I10): a target is stale when no backup has ever reached it, or when the last one
 * that did ended more than twice BACKUP_SCHEDULE's interval ago. With the schedule off, only "never" is
 * stale.
 */
export function isBackupStale(ageMs: number | undefined, intervalMs: number | undefined): boolean {
  return ageMs === undefined || (intervalMs !== undefined && ageMs > 2 * intervalMs);
}

/** Every target's freshness by that rule. Throws ScheduleError for a schedule that is not cron. */
export async function backupFreshness(
  sql: Sql,
  config: Config,
  now = new Date(),
): Promise<{ intervalMs: number | undefined; targets: TargetFreshness[] }> {
  const intervalMs = scheduleInterval(config.backup.schedule, now, 'BACKUP_SCHEDULE');
  const last = await lastSuccessByTarget(sql);
  return {
    intervalMs,
    targets: targetNames(config).map((target) => {
      const lastSuccessAt = last.get(target);
      const ageMs = lastSuccessAt ? now.getTime() - lastSuccessAt.getTime() : undefined;
      return { target, lastSuccessAt, ageMs, stale: isBackupStale(ageMs, intervalMs) };
    }),
  };
}

/** What the catalog keeps of a drill's report (drill.ts's DrillReport has this shape). */
export interface DrillOutcome {
  status: 'passed' | 'failed';
  snapshot: { id: string };
  recoverySeconds: number;
  reason?: string | undefined;
  checks: unknown[];
}

/** Records a finished drill; best effort, like the backup runs. */
export async function recordDrill(sql: Sql, target: string, report: DrillOutcome): Promise<void> {
  try {
    await sql`
      insert into drill_runs (finished_at, status, snapshot_id, target, recovery_seconds, reason, checks)
      values (now(), ${report.status}, ${report.snapshot.id}, ${target}, ${report.recoverySeconds}, ${report.reason ?? null},
              ${sql.json(report.checks as never)})`;
  } catch {
    // The drill's own verdict is printed and returned either way.
  }
}

/** The newest finished drill with one of `statuses`. */
export async function latestDrill(
  sql: Sql,
  statuses: Array<DrillRun['status']> = ['passed', 'failed'],
): Promise<DrillRun | undefined> {
  const [row] = await sql<DrillRun[]>`
    select status, started_at as "startedAt", finished_at as "finishedAt", snapshot_id as "snapshotId", target,
           recovery_seconds as "recoverySeconds", reason
    from drill_runs where finished_at is not null and status in ${sql(statuses)}
    order by finished_at desc, id desc limit 1`;
  return row;
}

/**
 * After a restore the catalog is as the dump saw it: the run that took this very snapshot shows as running
 * forever, so doctor would say no backup ever reached its target. That run is closed as it ended (succeeded,
 * on the target the snapshot came from, at the snapshot's time); any older run left unfinished is closed as
 * interrupted. Returns the number of runs closed.
 */
export async function closeRunsAfterRestore(
  sql: Sql,
  snapshot: { id: string; time: string },
  target: string,
): Promise<number> {
  return await sql.begin(async (tx) => {
    const [producer] = await tx`
      select id from backup_runs where finished_at is null and started_at <= ${snapshot.time}
      order by started_at desc, id desc limit 1`;
    let closed = 0;
    if (producer) {
      const targets: TargetOutcome[] = [{ name: target, ok: true }];
      await tx`
        update backup_runs set finished_at = ${snapshot.time}, status = 'succeeded', snapshot_id = ${snapshot.id},
          targets = ${tx.json(targets as never)}
        where id = ${producer.id}`;
      closed++;
    }
    const interrupted = await tx`
      update backup_runs set finished_at = ${snapshot.time}, status = 'failed',
        error = ${`interrupted: this database was restored from snapshot ${snapshot.id.slice(0, 12)}`}
      where finished_at is null and id <> ${producer?.id ?? -1} returning id`;
    return closed + interrupted.length;
  });
}

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
