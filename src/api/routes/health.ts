import { access, constants } from 'node:fs/promises';
import type { FastifyPluginAsync } from 'fastify';
import { unrepairedObjectDamage } from '../../objects/integrity.ts';
import { invalidPromptFiles } from '../../prompts/index.ts';
import { backupFreshness } from '../../vault/catalog.ts';
import type { ApiDeps } from '../deps.ts';

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

export function healthRoutes(deps: ApiDeps): FastifyPluginAsync {
  return async (app) => {
    // Liveness: a process whose thread pool is stuck answers 503, so Kubernetes restarts it; one whose event
    // loop is stuck does not answer at all, which a probe's timeout counts as a failure too.
    app.get('/healthz', { schema: { hide: true } }, async (_request, reply) => {
      const status = deps.liveness?.status() ?? { ok: true };
      if (status.ok) return { status: 'ok' };
      return reply.status(503).send({ status: 'stuck', detail: status.problem });
    });

    app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
      const checks = await Promise.all([
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
      ]);
      const ready = checks.every((check) => check.ok || check.critical === false);
      return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks });
    });

    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
      const body = await deps.metrics.registry.metrics();
      return reply.type(deps.metrics.registry.contentType).send(body);
    });
  };
}
