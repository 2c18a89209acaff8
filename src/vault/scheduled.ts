import { setTimeout as wait } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { BlobStore } from '../blobstore/blobstore.ts';
import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import type { Clock, ScheduledJob } from '../lib/scheduler.ts';
import { type BackupResult, runBackup } from './backup.ts';
import { finishDrillRun, recordedRun, startDrillRun } from './catalog.ts';
import { refusedDrill, runDrill } from './drill.ts';

import { followLedgers } from './ledger.ts';
import { type CollectReport, collectGarbage } from './object-gc.ts';
import { streamsWal } from './protected-by.ts';
import type { Repository } from './repository/index.ts';
import { resolveSnapshot } from './restore.ts';
import { applyRetention } from './retention.ts';
import { openFirstTarget } from './targets.ts';
import { runMomentDrill } from './wal/drill-moment.ts';
import { recoverableWindow } from './wal/pitr-plan.ts';

export interface VaultJobDeps {
  config: Config;
  sql: Sql;
  databaseUrl: string;
  redisUrl: string;
  objects: BlobStore;
  logger: Logger;
  clock: Clock;
}

const BACKUP_LOCK = 7_401_552_332;
const DRILL_LOCK = 7_401_552_333;
const GC_LOCK = 7_401_552_334;

/** Holds advisory lock `key` when it is free: its release, or undefined while another process holds it. */
async function tryLock(sql: Sql, key: number): Promise<(() => Promise<void>) | undefined> {
  const connection = await sql.reserve();
  try {
    const [row] = await connection`select pg_try_advisory_lock(${key}) as got`;
    if (!row?.got) {
      connection.release();
      return undefined;
    }
  } catch (error) {
    connection.release();
    throw error;
  }
  return async () => {
    try {
      await connection`select pg_advisory_unlock(${key})`;
    } finally {
      connection.release();
    }
  };
}

/** Another scheduler (a second host, a second `up`) or an API request may hold the job: then this slot is theirs. */
async function exclusively(sql: Sql, key: number, fn: () => Promise<void>): Promise<boolean> {
  const release = await tryLock(sql, key);
  if (!release) return false;
  try {
    await fn();
  } finally {
    await release();
  }
  return true;
}

/**
 * One snapshot on every target (a target that was down catches up with what it missed), recorded in the
 * catalog with `tags` saying who started it; with `prune`, the retention policy and prune on every target
 * afterwards. One at a time across every process; undefined when another run holds the lock.
 */
export async function backupNow(
  deps: VaultJobDeps,
  options: { tags: string[]; time?: Date; prune: boolean },
): Promise<BackupResult | undefined> {
  let result: BackupResult | undefined;
  const ran = await exclusively(deps.sql, BACKUP_LOCK, async () => {
    result = await recordedRun(deps.sql, options.tags, () =>
      runBackup({
        config: deps.config,
        sql: deps.sql,
        databaseUrl: deps.databaseUrl,
        redisUrl: deps.redisUrl,
        objects: deps.objects,
        tags: options.tags,
        ...(options.time ? { time: options.time } : {}),
      }),
    );
    const failed = result.targets.filter((t) => !t.ok);
    if (failed.length) deps.logger.error({ failed }, 'backup did not reach every target');
    else deps.logger.info({ snapshot: result.snapshotId, ms: result.durationMs }, 'backup done');
    if (result.skipped.length)
      deps.logger.warn({ skipped: result.skipped }, 'backup left out entries a restore would refuse');
    if (!options.prune) return;
    const retention = await applyRetention(deps.config, deps.config.backup.keep, {
      prune: true,
      now: deps.clock.now().getTime(),
    });
    for (const { target, result: forgot, error } of retention) {
      if (error) deps.logger.error({ err: error, target }, 'retention failed; the next run tries again');
      else if (forgot?.removed.length)
        deps.logger.info(
          { target, removed: forgot.removed.length, pruned: forgot.pruned },
          'retention applied',
        );
    }
  });
  if (!ran) deps.logger.info('another process is running a backup; skipped');
  return result;
}

/** The scheduled backup, then the retention policy with prune on every target. */
export function backupJob(deps: VaultJobDeps): ScheduledJob {
  return {
    name: 'backup',
    schedule: deps.config.backup.schedule,
    run: async (slot) => {
      await backupNow(deps, { tags: ['scheduled'], time: slot, prune: true });
    },
  };
}

/**
 * Every minute: each target still owed a user-data deletion gets its ledger brought up to date (I3), so an
 * offsite ledger follows as soon as its target is reachable, retried until written.
 */
export function ledgerJob(deps: VaultJobDeps): ScheduledJob {
  return {
    name: 'ledger',
    schedule: '* * * * *',
    run: async () => {
      const debts = await followLedgers(deps.config, deps.sql);
      for (const debt of debts.filter((d) => d.pending > 0)) {
        deps.logger.warn(
          {
            target: debt.target,
            pending: debt.pending,
            lagSeconds: Math.round(debt.lagSeconds),
            error: debt.lastError,
          },
          'deletion ledger behind; retrying next minute',
        );
      }
    },
  };
}

/** The scheduled restore drill of the newest snapshot on the first target that opens. */
export function drillJob(deps: VaultJobDeps): ScheduledJob {
  return {
    name: 'drill',
    schedule: deps.config.drill.schedule,
    run: async () => {
      await (await startDrill(deps))?.done;
    },
  };
}

export interface StartedDrill {
  /** The drill_runs row, visible as running until the drill ends. */
  id: number;
  done: Promise<void>;
}

/**
 * A restore drill of the newest snapshot on the first target that opens and, with continuous protection, of a
 * random moment of its window; each recorded as running, then with its verdict. One at a time across every
 * process: undefined while another drill runs.
 */
export async function startDrill(deps: VaultJobDeps): Promise<StartedDrill | undefined> {
  const release = await tryLock(deps.sql, DRILL_LOCK);
  if (!release) return undefined;
  try {
    const { target, repo } = await openFirstTarget(deps.config);
    const id = await startDrillRun(deps.sql, target.name);
    const done = drillNewest(deps, target.name, repo, id).finally(release);
    return { id, done };
  } catch (error) {
    await release();
    throw error;
  }
}

async function drillNewest(deps: VaultJobDeps, target: string, repo: Repository, id: number): Promise<void> {
  const report = await resolveSnapshot(repo, 'latest')
    .then((snapshot) => runDrill(deps.config, repo, snapshot))
    .catch((error: Error) => refusedDrill('latest', error));
  await finishDrillRun(deps.sql, id, report);
  if (report.status === 'passed')
    deps.logger.info({ seconds: report.recoverySeconds }, 'restore drill passed');
  else deps.logger.error({ reason: report.reason }, 'restore drill FAILED');
  // Continuous protection is proven too: a random moment of its window, restored and verified.
  if (!streamsWal(deps.config) || !(await recoverableWindow(repo))) return;
  const momentId = await startDrillRun(deps.sql, target);
  const moment = await runMomentDrill(deps.config, repo).catch((error: Error) =>
    refusedDrill('moment', error),
  );
  await finishDrillRun(deps.sql, momentId, moment);
  if (moment.status === 'passed')
    deps.logger.info(
      { seconds: moment.recoverySeconds, moment: moment.snapshot.time },
      'moment drill passed',
    );
  else deps.logger.error({ reason: moment.reason }, 'moment drill FAILED');
}

/**
 * One run of the collector (I3): tombstoned bytes no restorable state needs, orphans and leftovers older than
 * OBJECT_GC_GRACE. Each removal is safe on its own; the lock only keeps two schedulers from doing the work twice.
 */
export async function collectNow(deps: VaultJobDeps): Promise<CollectReport | undefined> {
  let report: CollectReport | undefined;
  await exclusively(deps.sql, GC_LOCK, async () => {
    report = await collectGarbage({
      config: deps.config,
      sql: deps.sql,
      databaseUrl: deps.databaseUrl,
      objects: deps.objects,
      graceSeconds: deps.config.backup.gcGraceSeconds,
      logger: deps.logger,
    });
  });
  return report;
}

/** The collector at start-up (a crash's leftovers), then every grace period, until `signal` aborts. */
export async function runCollector(deps: VaultJobDeps, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      await collectNow(deps);
    } catch (error) {
      deps.logger.error({ err: error }, 'object collection failed; retrying next interval');
    }
    await wait(deps.config.backup.gcGraceSeconds * 1000, undefined, { signal }).catch(() => {});
  }
}
