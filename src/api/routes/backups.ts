import { Cron } from 'croner';
import type { FastifyPluginAsync } from 'fastify';
import { requireRole } from '../auth.ts';
import type { ApiDeps } from '../server.ts';

const nextRun = (schedule: string) =>
  schedule === 'off'
    ? null
    : (new Cron(schedule, { paused: true, timezone: 'UTC' }).nextRun()?.toISOString() ?? null);

/** The admin view of backups, read from the catalog every process writes: runs, per-target status, drills, schedule. */
export function backupRoutes(deps: ApiDeps): FastifyPluginAsync {
  const admin = requireRole(deps.tokens, 'admin');
  return async (app) => {
    app.get(
      '/backups',
      {
        preHandler: admin,
        schema: {
          summary: 'Backups with per-target status, the last drill, the next run',
          tags: ['backups'],
        },
      },
      async () => {
        const runs = await deps.sql`
        select id, started_at, finished_at, status, snapshot_id, tags, targets, bytes_added, error
        from backup_runs order by id desc limit 100`;
        const [drill] = await deps.sql`
        select started_at, finished_at, status, snapshot_id, target, recovery_seconds, reason
        from drill_runs order by id desc limit 1`;
        const lastByTarget = await deps.sql`
        select t->>'name' as target, max(r.finished_at) as at
        from backup_runs r, jsonb_array_elements(r.targets) t where (t->>'ok')::boolean group by 1`;
        return {
          backups: runs.map((r) => ({
            id: Number(r.id),
            snapshotId: r.snapshot_id,
            status: r.status,
            startedAt: (r.started_at as Date).toISOString(),
            finishedAt: (r.finished_at as Date | null)?.toISOString() ?? null,
            tags: r.tags,
            targets: r.targets,
            bytesAdded: Number(r.bytes_added),
            ...(r.error ? { error: r.error } : {}),
          })),
          targets: Object.fromEntries(
            lastByTarget.map((r) => [r.target, { lastSuccessAt: (r.at as Date).toISOString() }]),
          ),
          lastDrill: drill
            ? {
                status: drill.status,
                snapshotId: drill.snapshot_id,
                target: drill.target,
                recoverySeconds: drill.recovery_seconds,
                finishedAt: (drill.finished_at as Date | null)?.toISOString() ?? null,
                ...(drill.reason ? { reason: drill.reason } : {}),
              }
            : null,
          schedule: {
            backup: deps.config.backup.schedule,
            nextBackupAt: nextRun(deps.config.backup.schedule),
            drill: deps.config.drill.schedule,
            nextDrillAt: nextRun(deps.config.drill.schedule),
          },
        };
      },
    );

    app.post(
      '/backups',
      {
        preHandler: admin,
        schema: {
          summary: 'Start a backup now (202); GET shows its progress and outcome',
          tags: ['backups'],
        },
      },
      async (request, reply) => {
        const { backupJob } = await import('../../vault/scheduled.ts');
        const { realClock } = await import('../../lib/scheduler.ts');
        const { createBlobStore } = await import('../../blobstore/index.ts');
        const job = backupJob({
          config: deps.config,
          sql: deps.sql,
          databaseUrl: deps.urls.database,
          redisUrl: deps.urls.redis,
          objects: createBlobStore(deps.config.storageUrl, deps.config.s3),
          logger: request.log as never,
          clock: realClock,
        });
        // The run records itself in the catalog; one at a time across every process (an advisory lock).
        void job
          .run(new Date())
          .catch((error) => request.log.error({ err: error }, 'backup requested over the API failed'));
        return reply.status(202).send({ status: 'started' });
      },
    );
  };
}
