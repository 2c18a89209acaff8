import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import type { ScheduledJob } from '../lib/scheduler.ts';
import { runsSince } from '../vault/catalog.ts';
import { protectionStatus } from '../vault/wal/report.ts';

/** Samples older than this are dropped: the console shows days, Prometheus keeps the long history. */
const KEEP_DAYS = 8;

/**
 * One sample per continuously protected source and target: the lag that `trendgen status` and
 * trendgen_recovery_point_lag_seconds report at this moment. Returns how many were taken.
 */
export async function sampleRecoveryPoints(sql: Sql, config: Config, at = new Date()): Promise<number> {
  const { sources } = await protectionStatus(sql, config);
  for (const s of sources) {
    await sql`insert into recovery_point_samples (taken_at, source, target, lag_seconds)
      values (${at}, ${s.source}, ${s.target}, ${s.lagSeconds}) on conflict do nothing`;
  }
  await sql`delete from recovery_point_samples
    where taken_at < ${at}::timestamptz - make_interval(days => ${KEEP_DAYS})`;
  return sources.length;
}

/** Every minute, in the scheduler: what the console's timeline draws. */
export function recoverySampleJob(sql: Sql, config: Config): ScheduledJob {
  return {
    name: 'recovery-samples',
    schedule: '* * * * *',
    run: async (slot) => {
      await sampleRecoveryPoints(sql, config, slot);
    },
  };
}

export interface RecoveryTimeline {
  from: string;
  to: string;
  snapshots: Array<{
    at: string;
    snapshotId: string | null;
    status: string;
    bytesAdded: number;
    targets: Array<{ name: string; ok: boolean }>;
  }>;
  lag: Array<{ at: string; source: string; target: string; lagSeconds: number | null }>;
}

/** Backups and recovery-point lag over the last `days`, oldest first. */
export async function recoveryTimeline(sql: Sql, days: number, now = new Date()): Promise<RecoveryTimeline> {
  const from = new Date(now.getTime() - days * 86_400_000);
  const [runs, samples] = await Promise.all([
    runsSince(sql, from),
    sql<Array<{ taken_at: Date; source: string; target: string; lag_seconds: number | null }>>`
      select taken_at, source, target, lag_seconds from recovery_point_samples
      where taken_at >= ${from} order by taken_at, source, target`,
  ]);
  return {
    from: from.toISOString(),
    to: now.toISOString(),
    snapshots: runs.map((run) => ({
      at: (run.finishedAt ?? run.startedAt).toISOString(),
      snapshotId: run.snapshotId,
      status: run.status,
      bytesAdded: run.bytesAdded,
      targets: run.targets.map((t) => ({ name: t.name, ok: t.ok })),
    })),
    lag: samples.map((s) => ({
      at: s.taken_at.toISOString(),
      source: s.source,
      target: s.target,
      lagSeconds: s.lag_seconds,
    })),
  };
}
