import type { Logger } from 'pino';
import type { BlobStore } from '../blobstore/blobstore.ts';
import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import type { Clock, ScheduledJob } from '../lib/scheduler.ts';
import { runBackup } from './backup.ts';
import { recordDrill, recordRunEnd, recordRunStart } from './catalog.ts';
import { runDrill } from './drill.ts';
import { runForget } from './forget.ts';
import { resolveSnapshot } from './restore.ts';
import { openRepository, resolveTargets } from './targets.ts';

export interface VaultJobDeps {
  config: Config;
  sql: Sql;
  databaseUrl: string;
  redisUrl: string;
  objects: BlobStore;
  logger: Logger;
  clock: Clock;
}

/** Another scheduler (a second host, a second `up`) may hold the job: then this slot is theirs. */
async function exclusively(sql: Sql, key: number, fn: () => Promise<void>): Promise<boolean> {
  const connection = await sql.reserve();
  try {
    const [row] = await connection`select pg_try_advisory_lock(${key}) as got`;
    if (!row?.got) return false;
    try {
      await fn();
    } finally {
      await connection`select pg_advisory_unlock(${key})`;
    }
    return true;
  } finally {
    connection.release();
  }
}

/**
 * The scheduled backup: one snapshot on every target (a target that was down catches up with what it
 * missed), recorded in the catalog, then the retention policy with prune on every target.
 */
export function backupJob(deps: VaultJobDeps): ScheduledJob {
  return {
    name: 'backup',
    schedule: deps.config.backup.schedule,
    run: async (slot) => {
      const ran = await exclusively(deps.sql, 7_401_552_332, async () => {
        const runId = await recordRunStart(deps.sql, ['scheduled']);
        try {
          const result = await runBackup({
            config: deps.config,
            sql: deps.sql,
            databaseUrl: deps.databaseUrl,
            redisUrl: deps.redisUrl,
            objects: deps.objects,
            tags: ['scheduled'],
            time: slot,
          });
          await recordRunEnd(deps.sql, runId, {
            snapshotId: result.snapshotId,
            targets: result.targets,
            bytesAdded: result.bytesAdded,
          });
          const failed = result.targets.filter((t) => !t.ok);
          if (failed.length) deps.logger.error({ failed }, 'backup did not reach every target');
          else
            deps.logger.info({ snapshot: result.snapshotId, ms: result.durationMs }, 'scheduled backup done');
        } catch (error) {
          await recordRunEnd(deps.sql, runId, {
            targets: [],
            bytesAdded: 0,
            error: (error as Error).message,
          });
          throw error;
        }
        for (const target of resolveTargets(deps.config)) {
          try {
            const repo = await openRepository(target, deps.config.backup.password);
            const forgot = await runForget(repo, deps.config.backup.keep, {
              prune: true,
              now: deps.clock.now().getTime(),
            });
            if (forgot.removed.length)
              deps.logger.info(
                { target: target.name, removed: forgot.removed.length, pruned: forgot.pruned },
                'retention applied',
              );
          } catch (error) {
            deps.logger.error(
              { err: error, target: target.name },
              'retention failed; the next run tries again',
            );
          }
        }
      });
      if (!ran) deps.logger.info('another scheduler is running the backup; skipped');
    },
  };
}

/** The scheduled restore drill of the newest snapshot on the first target. */
export function drillJob(deps: VaultJobDeps): ScheduledJob {
  return {
    name: 'drill',
    schedule: deps.config.drill.schedule,
    run: async () => {
      await exclusively(deps.sql, 7_401_552_333, async () => {
        const [target] = resolveTargets(deps.config);
        const repo = await openRepository(target!, deps.config.backup.password);
        const snapshot = await resolveSnapshot(repo, 'latest');
        const report = await runDrill(deps.config, repo, snapshot);
        await recordDrill(deps.sql, target!.name, report);
        if (report.status === 'passed')
          deps.logger.info({ seconds: report.recoverySeconds }, 'restore drill passed');
        else deps.logger.error({ reason: report.reason }, 'restore drill FAILED');
      });
    },
  };
}
