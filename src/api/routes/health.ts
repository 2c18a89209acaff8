import { access, constants } from 'node:fs/promises';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { unrepairedObjectDamage } from '../../objects/integrity.ts';
import { invalidPromptFiles } from '../../prompts/index.ts';
import { backupFreshness } from '../../vault/catalog.ts';
import { streamsWal } from '../../vault/protected-by.ts';
import { readWalStatus, synchronousStall } from '../../vault/wal/status.ts';
import type { ApiDeps } from '../deps.ts';
import { errors } from '../openapi.ts';

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  ms: number;
  /** A non-critical check is reported but does not make the service unready (a stale backup is an alarm, not an outage). */
  critical?: boolean;
}

async function timed(name: string, probe: () => Promise<string>): Promise<Check> {
  const started = performance.now();
  try {
    const detail = await Promise.race([
      probe(),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('no answer within 3 s')), 3000).unref(),
      ),
    ]);
    return { name, ok: true, detail, ms: Math.round(performance.now() - started) };
  } catch (error) {
    return { name, ok: false, detail: (error as Error).message, ms: Math.round(performance.now() - started) };
  }
}

/**
 * Continuous protection: a lagging stream is reported without taking the service out, but in synchronous mode a
 * missing receiver means every commit hangs, and that is an outage.
 */
async function continuousCheck(deps: ApiDeps): Promise<Check> {
  let stalled = false;
  const check = await timed('continuous', async () => {
    if (!streamsWal(deps.config)) {
      const pitr = deps.config.backup.databasePitr;
      return pitr === 'trendgen' ? 'off' : `the database's point-in-time recovery is kept by ${pitr}`;
    }
    const stall = await synchronousStall(deps.sql);
    if (stall) {
      stalled = true;
      throw new Error(stall);
    }
    const rows = await readWalStatus(deps.sql);
    if (rows.length === 0) throw new Error('trendgen protect has not reported yet');
    const late = rows.filter((r) => r.lagSeconds === null || r.lagSeconds > 5 || r.error);
    const text = rows
      .map((r) => `${r.target} ${r.lagSeconds === null ? 'never' : `${r.lagSeconds.toFixed(1)} s`} behind`)
      .join(', ');
    if (late.length) throw new Error(`${text}${late[0]!.error ? `: ${late[0]!.error}` : ''}`);
    return text;
  });
  return { ...check, critical: stalled };
}
const readiness = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ready', 'not_ready'] },
    checks: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: {
            type: 'string',
            enum: ['postgres', 'redis', 'objects', 'prompts', 'object-integrity', 'backups', 'continuous'],
          },
          ok: { type: 'boolean' },
          detail: { type: 'string' },
          ms: { type: 'integer' },
          critical: { type: 'boolean', description: 'false: reported, but the service stays ready' },
        },
        additionalProperties: true,
      },
    },
  },
  additionalProperties: true,
};

/** Every dependency, each with its own deadline; a non-critical failure is reported without taking the service out. */
function readinessChecks(deps: ApiDeps): Promise<Check[]> {
  return Promise.all([
    timed('postgres', async () => {
      await deps.sql`select 1`;
      return 'reachable';
    }),
    timed('redis', async () => `answered ${await deps.redis.ping()}`),
    timed('objects', async () => {
      await deps.objects.blobs.head('health/probe');
      return `reachable at ${deps.objects.blobs.location}`;
    }),
    timed('prompts', async () => {
      await access(deps.config.promptsDir, constants.R_OK | constants.W_OK);
      const invalid = await invalidPromptFiles(deps.sql);
      if (invalid.length === 0) return 'all files valid';
      // One sentence per file, as recorded: "x.yaml: line 1, column 1: the file is a symbolic link, …".
      const shown = invalid
        .slice(0, 3)
        .map(({ name, error }) => `${name}.yaml: ${error?.message ?? 'unreadable'}`)
        .join('; ');
      const more = invalid.length > 3 ? `; and ${invalid.length - 3} more` : '';
      return `${invalid.length} prompt file(s) invalid, their last valid versions stay in use: ${shown}${more}`;
    }),
    timed('object-integrity', async () => {
      const damaged = await unrepairedObjectDamage(deps.sql);
      if (damaged.length) {
        throw new Error(
          `${damaged.length} object(s) damaged in the store and not repaired: ${damaged
            .slice(0, 3)
            .map((d) => d.key)
            .join(', ')}`,
        );
      }
      return 'no damaged object copies found';
    }).then((check) => ({ ...check, critical: false })),
    timed('backups', async () => {
      const { targets } = await backupFreshness(deps.sql, deps.config);
      const stale = targets.filter((t) => t.stale).map((t) => t.target);
      if (stale.length) throw new Error(`no recent backup on ${stale.join(', ')}`);
      return targets.map((t) => `${t.target} ${Math.round(t.ageMs! / 60_000)} min ago`).join(', ');
    }).then((check) => ({ ...check, critical: false })),
    continuousCheck(deps),
  ]);
}

export function healthRoutes(deps: ApiDeps): FastifyPluginAsync {
  return async (app) => {
    // Liveness: a process whose thread pool is stuck answers 503, so Kubernetes restarts it; one whose event
    // loop is stuck does not answer at all, which a probe's timeout counts as a failure too.
    app.get(
      '/healthz',
      {
        schema: {
          summary: 'Liveness: the process answers and its thread pool is not stuck',
          operationId: 'getHealth',
          tags: ['health'],
          security: [],
          response: {
            200: {
              description: 'Alive',
              type: 'object',
              properties: { status: { type: 'string', enum: ['ok'] } },
              additionalProperties: true,
            },
            ...errors(503),
          },
        },
      },
      async (_request, reply) => {
        const status = deps.liveness?.status() ?? { ok: true };
        if (status.ok) return { status: 'ok' };
        // The typed reply only knows the 200 shape; the 503 body is the shared error with the probe's words.
        return (reply as unknown as FastifyReply).status(503).send({
          status: 'stuck',
          detail: status.problem,
          error: { code: 'stuck', message: status.problem },
        });
      },
    );

    const readyzSchema = {
      summary: 'Readiness per dependency (a stale backup is reported without making the service unready)',
      operationId: 'getReadiness',
      tags: ['health'],
      security: [],
      response: {
        200: { description: 'Every critical dependency answers', ...readiness },
        503: { description: 'A critical dependency fails: see `checks`', ...readiness },
      },
    };
    app.get('/readyz', { schema: readyzSchema }, async (_request, reply) => {
      const checks = await readinessChecks(deps);
      const ready = checks.every((check) => check.ok || check.critical === false);
      return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks });
    });

    const metricsSchema = {
      summary: 'Prometheus metrics (text exposition format 0.0.4)',
      operationId: 'getMetrics',
      tags: ['health'],
      security: [],
      response: {
        200: {
          description: 'The metrics; deploy/prometheus/alerts.yml and deploy/grafana/trendgen.json use them',
          content: { 'text/plain': { schema: { type: 'string' } } },
        },
        ...errors(500, 503),
      },
    };
    app.get('/metrics', { schema: metricsSchema }, async (_request, reply) => {
      const body = await deps.metrics.registry.metrics();
      return reply.type(deps.metrics.registry.contentType).send(body);
    });
  };
}
