import type { FastifyPluginAsync } from 'fastify';
import { realClock } from '../../lib/scheduler.ts';
import { latestDoctorReport } from '../../ops/doctor/reports.ts';
import { listDrills } from '../../vault/catalog.ts';
import { startDrill } from '../../vault/scheduled.ts';
import { requireRole } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';
import { ADMIN_ERRORS, ADMIN_SECURITY, errors } from '../openapi.ts';

const drillSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    status: { type: 'string', enum: ['running', 'passed', 'failed'] },
    startedAt: { type: 'string', format: 'date-time' },
    finishedAt: { type: 'string', format: 'date-time', nullable: true },
    snapshotId: { type: 'string', nullable: true },
    target: { type: 'string', nullable: true },
    recoverySeconds: { type: 'number', nullable: true },
    reason: { type: 'string', nullable: true },
    checks: {
      type: 'array',
      items: {
        type: 'object',
        properties: { name: { type: 'string' }, ok: { type: 'boolean' }, detail: { type: 'string' } },
        additionalProperties: true,
      },
    },
  },
  additionalProperties: true,
};

/** The doctor's newest report and restore drills: what the console's Protection and Snapshots pages show. */
export function operationsRoutes(deps: ApiDeps): FastifyPluginAsync {
  const admin = requireRole(deps.tokens, 'admin');
  return async (app) => {
    app.get(
      '/doctor',
      {
        preHandler: admin,
        schema: {
          summary: "The scheduler's newest doctor report (taken every 5 minutes)",
          operationId: 'getDoctorReport',
          tags: ['operations'],
          response: {
            200: {
              description: 'Every check with OK, WARN or FAIL; takenAt null before the first report',
              type: 'object',
              properties: {
                takenAt: { type: 'string', format: 'date-time', nullable: true },
                ok: { type: 'boolean', nullable: true },
                checks: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: {
                      id: { type: 'string' },
                      status: { type: 'string', enum: ['OK', 'WARN', 'FAIL'] },
                      message: { type: 'string' },
                      hint: { type: 'string' },
                    },
                    additionalProperties: true,
                  },
                },
              },
              required: ['takenAt', 'checks'],
              additionalProperties: true,
            },
            ...errors(...ADMIN_ERRORS),
          },
          security: ADMIN_SECURITY,
        },
      },
      async () => {
        const latest = await latestDoctorReport(deps.sql);
        return latest
          ? { takenAt: latest.takenAt.toISOString(), ok: latest.report.ok, checks: latest.report.checks }
          : { takenAt: null, ok: null, checks: [] };
      },
    );

    app.get(
      '/drills',
      {
        preHandler: admin,
        schema: {
          summary: 'Restore drills, newest first, running ones included',
          operationId: 'listDrills',
          tags: ['operations'],
          querystring: {
            type: 'object',
            properties: { limit: { type: 'integer', minimum: 1, maximum: 200, default: 20 } },
          },
          response: {
            200: {
              description: 'Drills with their checks',
              type: 'object',
              properties: { drills: { type: 'array', items: drillSchema } },
              required: ['drills'],
              additionalProperties: true,
            },
            ...errors(400, ...ADMIN_ERRORS),
          },
          security: ADMIN_SECURITY,
        },
      },
      async (request) => ({ drills: await listDrills(deps.sql, (request.query as { limit: number }).limit) }),
    );

    app.post(
      '/drills',
      {
        preHandler: admin,
        schema: {
          summary: 'Start a restore drill of the newest snapshot now (202); GET /drills shows it',
          operationId: 'startDrill',
          tags: ['operations'],
          response: {
            202: {
              description: 'Started in the background: its row shows as running until the verdict',
              type: 'object',
              properties: { id: { type: 'integer' }, status: { type: 'string', enum: ['running'] } },
              required: ['id', 'status'],
              additionalProperties: true,
            },
            ...errors(409, ...ADMIN_ERRORS),
          },
          security: ADMIN_SECURITY,
        },
      },
      async (request, reply) => {
        const started = await startDrill({
          config: deps.config,
          sql: deps.sql,
          databaseUrl: deps.urls.database,
          redisUrl: deps.urls.redis,
          objects: deps.objects.blobs,
          logger: request.log as never,
          clock: realClock,
        });
        if (!started) {
          throw new HttpError(
            409,
            'drill_running',
            'A restore drill is already running; wait for its verdict.',
          );
        }
        started.done.catch((error) =>
          request.log.error({ err: error }, 'drill requested over the API failed'),
        );
        return reply.status(202).send({ id: started.id, status: 'running' });
      },
    );
  };
}
