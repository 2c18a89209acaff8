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
import {
  ADMIN_ERRORS,
  ADMIN_SECURITY,
  binaryBody,
  CLIENT_ERRORS,
  DOC_ONLY_BODY,
  errors,
} from '../openapi.ts';
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

const slugParams = {
  type: 'object',
  properties: { slug: { type: 'string', description: 'The trend slug' } },
  required: ['slug'],
} as const;
const trend = (description: string) => ({ description, $ref: 'Trend#' });
// The bodies are checked by the trend module's own rules (one source, the same words in every answer); the
// document shows those rules, derived from them.
const jsonBody = (ref: string, description: string) => ({
  required: true,
  description,
  content: { 'application/json': { schema: { $ref: `${ref}#` } } },
});

const exampleBody = (() => {
  const raw = binaryBody(
    ['image/png', 'image/jpeg', 'image/webp', 'application/octet-stream'],
    'The image (at most MAX_UPLOAD_SIZE); its type is decided by its bytes',
  );
  return {
    ...raw,
    required: true,
    content: {
      ...raw.content,
      'multipart/form-data': {
        schema: {
          type: 'object',
          properties: { file: { type: 'string', format: 'binary' } },
          required: ['file'],
        },
      },
    },
  };
})();

const listTrendsSchema = {
  summary: 'Trends in display order (?all=true includes hidden and archived ones)',
  operationId: 'listTrends',
  tags: ['trends'],
  querystring: { type: 'object', properties: { all: { type: 'boolean' } } },
  response: {
    200: {
      description: 'The trends with their example image',
      type: 'object',
      properties: { trends: { type: 'array', items: { $ref: 'Trend#' } } },
      additionalProperties: true,
    },
    ...errors(400, ...CLIENT_ERRORS),
  },
};

const getTrendSchema = {
  summary: 'One trend',
  operationId: 'getTrend',
  tags: ['trends'],
  params: slugParams,
  response: { 200: trend('The trend'), ...errors(404, ...CLIENT_ERRORS) },
};

const createTrendSchema = {
  summary: 'Create a trend: {slug, title, description?, emoji?, prompt, params?, status?, position?}',
  operationId: 'createTrend',
  tags: ['trends'],
  [DOC_ONLY_BODY]: jsonBody('TrendInput', 'The new trend; `prompt` names an existing prompt'),
  response: { 201: trend('Created'), ...errors(400, 409, 415, 422, ...ADMIN_ERRORS) },
  security: ADMIN_SECURITY,
};

const updateTrendSchema = {
  summary: 'Change a trend',
  operationId: 'updateTrend',
  tags: ['trends'],
  params: slugParams,
  [DOC_ONLY_BODY]: jsonBody('TrendPatch', 'The fields to change'),
  response: { 200: trend('Changed'), ...errors(400, 404, 415, 422, ...ADMIN_ERRORS) },
  security: ADMIN_SECURITY,
};

const putTrendExampleSchema = {
  summary: 'Upload the example image (raw image/png, image/jpeg, image/webp body, or multipart field "file")',
  operationId: 'putTrendExample',
  tags: ['trends'],
  params: slugParams,
  [DOC_ONLY_BODY]: exampleBody,
  response: {
    200: { description: 'Stored; the trend refers to it', $ref: 'StoredObject#' },
    ...errors(400, 404, 413, 415, 422, ...ADMIN_ERRORS),
  },
  security: ADMIN_SECURITY,
};

export function trendRoutes(deps: ApiDeps): FastifyPluginAsync {
  const admin = requireRole(deps.tokens, 'admin');
  const client = requireRole(deps.tokens, 'client');
  return async (app) => {
    app.get(
      '/trends',
      {
        preHandler: client,
        schema: listTrendsSchema,
      },
      async (request) => {
        const all = (request.query as { all?: boolean }).all === true;
        return { trends: (await listTrends(deps.sql, { includeHidden: all })).map(presentTrend) };
      },
    );

    app.get(
      '/trends/:slug',
      {
        preHandler: client,
        schema: getTrendSchema,
      },
      async (request) => presentTrend(await getTrend(deps.sql, (request.params as { slug: string }).slug)),
    );

    app.post(
      '/trends',
      {
        preHandler: admin,
        schema: createTrendSchema,
      },
      async (request, reply) => {
        const input = parseBody(trendInput, request.body);
        return reply.status(201).send(presentTrend(await createTrend(deps.sql, input)));
      },
    );

    app.patch(
      '/trends/:slug',
      {
        preHandler: admin,
        schema: updateTrendSchema,
      },
      async (request) => {
        const patch = parseBody(trendPatch, request.body);
        return presentTrend(await updateTrend(deps.sql, (request.params as { slug: string }).slug, patch));
      },
    );

    app.put(
      '/trends/:slug/example',
      {
        preHandler: admin,
        schema: putTrendExampleSchema,
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
