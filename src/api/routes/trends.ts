import type { FastifyPluginAsync } from 'fastify';
import {
  createTrend,
  getTrend,
  listTrends,
  setTrendExample,
  trendInput,
  trendPatch,
  updateTrend,
} from '../../trends/trends.ts';
import { requireRole } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';
import { presentObject, presentTrend } from '../presenters.ts';

function parseBody<T>(
  schema: {
    safeParse(
      v: unknown,
    ):
      | { success: true; data: T }
      | { success: false; error: { issues: Array<{ path: PropertyKey[]; message: string }> } };
  },
  body: unknown,
): T {
  const parsed = schema.safeParse(body ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const where = issue.path.length ? `${issue.path.join('.')}: ` : '';
  throw new HttpError(400, 'invalid_request', `${where}${issue.message}.`);
}

const slugParams = { type: 'object', properties: { slug: { type: 'string' } }, required: ['slug'] } as const;

export function trendRoutes(deps: ApiDeps): FastifyPluginAsync {
  const admin = requireRole(deps.tokens, 'admin');
  const client = requireRole(deps.tokens, 'client');
  return async (app) => {
    app.get(
      '/trends',
      {
        preHandler: client,
        schema: {
          summary: 'Trends in display order (?all=true includes hidden and archived ones)',
          tags: ['trends'],
          querystring: { type: 'object', properties: { all: { type: 'boolean' } } },
        },
      },
      async (request) => {
        const all = (request.query as { all?: boolean }).all === true;
        return { trends: (await listTrends(deps.sql, { includeHidden: all })).map(presentTrend) };
      },
    );

    app.get(
      '/trends/:slug',
      { preHandler: client, schema: { summary: 'One trend', tags: ['trends'], params: slugParams } },
      async (request) => presentTrend(await getTrend(deps.sql, (request.params as { slug: string }).slug)),
    );

    app.post(
      '/trends',
      {
        preHandler: admin,
        schema: {
          summary: 'Create a trend: {slug, title, description?, emoji?, prompt, params?, status?}',
          tags: ['trends'],
        },
      },
      async (request, reply) => {
        const input = parseBody(trendInput, request.body);
        return reply.status(201).send(presentTrend(await createTrend(deps.sql, input)));
      },
    );

    app.patch(
      '/trends/:slug',
      { preHandler: admin, schema: { summary: 'Change a trend', tags: ['trends'], params: slugParams } },
      async (request) => {
        const patch = parseBody(trendPatch, request.body);
        return presentTrend(await updateTrend(deps.sql, (request.params as { slug: string }).slug, patch));
      },
    );

    app.put(
      '/trends/:slug/example',
      {
        preHandler: admin,
        schema: {
          summary:
            'Upload the example image (raw image/png, image/jpeg, image/webp body, or multipart field "file")',
          tags: ['trends'],
          params: slugParams,
        },
      },
      async (request) => {
        const { slug } = request.params as { slug: string };
        await getTrend(deps.sql, slug);
        const record = await storeUploadedImage(request, deps.objects, {
          kind: 'example',
          maxBytes: deps.config.limits.maxUploadBytes,
        });
        // The object row exists before the trend refers to it (I2).
        await setTrendExample(deps.sql, slug, record.key);
        return presentObject(record);
      },
    );
  };
}

import { storeUploadedImage } from '../uploads.ts';
