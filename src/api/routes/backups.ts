import { Cron } from 'croner';
import type { FastifyPluginAsync } from 'fastify';
import { realClock } from '../../lib/scheduler.ts';
import { recoveryTimeline } from '../../ops/recovery-samples.ts';
import { lastSuccessByTarget, latestDrill, listRuns } from '../../vault/catalog.ts';
import { ledgerDebts } from '../../vault/ledger-queue.ts';
import { backupNow } from '../../vault/scheduled.ts';
import { targetNames } from '../../vault/targets.ts';
import { protectionStatus } from '../../vault/wal/report.ts';
import { requireRole } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import { ADMIN_ERRORS, ADMIN_SECURITY, errors } from '../openapi.ts';

const nextRun = (schedule: string) =>
  schedule === 'off'
    ? null
    : (new Cron(schedule, { paused: true, timezone: 'UTC' }).nextRun()?.toISOString() ?? null);

/** What GET /backups answers: runs, per-target status, continuous protection, the last drill, the schedule. */
async function backupsView(deps: ApiDeps) {
  const [runs, lastSuccess, drill, continuous, ledgers] = await Promise.all([
    listRuns(deps.sql),
    lastSuccessByTarget(deps.sql),
    latestDrill(deps.sql),
    protectionStatus(deps.sql, deps.config),
    ledgerDebts(deps.sql, targetNames(deps.config)),
  ]);
  return {
    backups: runs.map((r) => ({
      id: r.id,
      snapshotId: r.snapshotId,
      status: r.status,
      startedAt: r.startedAt.toISOString(),
      finishedAt: r.finishedAt?.toISOString() ?? null,
      tags: r.tags,
      targets: r.targets,
      bytesAdded: r.bytesAdded,
      ...(r.error ? { error: r.error } : {}),
    })),
    targets: Object.fromEntries(
      [...lastSuccess].map(([target, at]) => [target, { lastSuccessAt: at.toISOString() }]),
    ),
    continuous,
    // I3: user-data deletions each target's ledger still lacks; the scheduler retries every minute.
    deletionLedgers: ledgers.map((d) => ({
      target: d.target,
      pending: d.pending,
      lagSeconds: Math.round(d.lagSeconds),
      ...(d.lastError ? { lastError: d.lastError } : {}),
    })),
    lastDrill: drill
      ? {
          status: drill.status,
          snapshotId: drill.snapshotId,
          target: drill.target,
          recoverySeconds: drill.recoverySeconds,
          finishedAt: drill.finishedAt.toISOString(),
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
}

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
          operationId: 'listBackups',
          tags: ['backups'],
          response: {
            200: { description: 'The catalog, newest run first', $ref: 'Backups#' },
            ...errors(...ADMIN_ERRORS),
          },
          security: ADMIN_SECURITY,
        },
      },
      async () => await backupsView(deps),
    );

    app.get(
      '/backups/timeline',
      {
        preHandler: admin,
        schema: {
          summary: 'Backups and recovery-point lag (sampled each minute) over the last days',
          operationId: 'getBackupTimeline',
          tags: ['backups'],
          querystring: {
            type: 'object',
            properties: { days: { type: 'integer', minimum: 1, maximum: 8, default: 7 } },
          },
          response: {
            200: {
              description: 'Oldest first: each run when it ended, each lag sample per source and target',
              type: 'object',
              properties: {
                from: { type: 'string', format: 'date-time' },
                to: { type: 'string', format: 'date-time' },
                snapshots: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: {
                      at: { type: 'string', format: 'date-time' },
                      snapshotId: { type: 'string', nullable: true },
                      status: { type: 'string' },
                      bytesAdded: { type: 'integer' },
                      targets: {
                        type: 'array',
                        items: {
                          type: 'object',
                          properties: { name: { type: 'string' }, ok: { type: 'boolean' } },
                          additionalProperties: true,
                        },
                      },
                    },
                    additionalProperties: true,
                  },
                },
                lag: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: {
                      at: { type: 'string', format: 'date-time' },
                      source: { type: 'string' },
                      target: { type: 'string' },
                      lagSeconds: { type: 'number', nullable: true },
                    },
                    additionalProperties: true,
                  },
                },
              },
              required: ['from', 'to', 'snapshots', 'lag'],
              additionalProperties: true,
            },
            ...errors(400, ...ADMIN_ERRORS),
          },
          security: ADMIN_SECURITY,
        },
      },
      async (request) => await recoveryTimeline(deps.sql, (request.query as { days: number }).days),
    );

    app.post(
      '/backups',
      {
        preHandler: admin,
        schema: {
          summary: 'Start a backup now (202); GET shows its progress and outcome',
          operationId: 'startBackup',
          tags: ['backups'],
          response: {
            202: {
              description: 'Started in the background (one backup at a time across every process)',
              type: 'object',
              properties: { status: { type: 'string', enum: ['started'] } },
              additionalProperties: true,
            },
            ...errors(401, 403, 500),
          },
          security: ADMIN_SECURITY,
        },
      },
      async (request, reply) => {
        // Tagged as the API's: a backup on request never prunes; retention is the schedule's job. It records
        // itself in the catalog, one at a time across every process.
        void backupNow(
          {
            config: deps.config,
            sql: deps.sql,
            databaseUrl: deps.urls.database,
            redisUrl: deps.urls.redis,
            objects: deps.objects.blobs,
            logger: request.log as never,
            clock: realClock,
          },
          { tags: ['api'], prune: false },
        ).catch((error) => request.log.error({ err: error }, 'backup requested over the API failed'));
        return reply.status(202).send({ status: 'started' });
      },
    );
  };
}
