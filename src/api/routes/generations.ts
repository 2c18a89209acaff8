import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { createGeneration, getGeneration, listGenerations } from '../../generation/jobs.ts';
import { enqueueWithin } from '../../generation/queue.ts';
import type { ObjectRecord } from '../../objects/store.ts';
import { requireRole } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';
import { CLIENT_ERRORS, DOC_ONLY_BODY, errors } from '../openapi.ts';
import { presentGeneration } from '../presenters.ts';

const fields = z.object({
  trend: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'must be a trend slug'),
  user: z.string().min(1).max(200),
  variants: z.coerce.number().int().min(1).max(4).default(3),
});

/** Reads the multipart body in order: text fields are collected, the photo is streamed to the object store. */
async function readGenerationForm(request: FastifyRequest, deps: ApiDeps) {
  if (!request.isMultipart()) {
    throw new HttpError(
      415,
      'unsupported_media_type',
      'Send multipart/form-data with fields trend, user, variants and photo.',
    );
  }
  const values: Record<string, string> = {};
  let photo: ObjectRecord | undefined;
  for await (const part of request.parts({ limits: { fileSize: deps.config.limits.maxUploadBytes + 1 } })) {
    if (part.type === 'file') {
      if (part.fieldname !== 'photo' || photo) {
        part.file.resume();
        throw new HttpError(400, 'invalid_request', 'Send exactly one file, in the field "photo".');
      }
      photo = await deps.objects.put(part.file, {
        kind: 'photo',
        maxBytes: deps.config.limits.maxUploadBytes,
        declaredType: part.mimetype,
        decode: true,
      });
    } else {
      values[part.fieldname] = String(part.value);
    }
  }
  if (!photo) throw new HttpError(400, 'invalid_request', 'The field "photo" (an image) is missing.');
  const parsed = fields.safeParse(values);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new HttpError(400, 'invalid_request', `${issue.path.join('.')}: ${issue.message}.`);
  }
  return { ...parsed.data, photo };
}

const generationForm = {
  required: true,
  description: 'The photo and what to make of it (the photo at most MAX_UPLOAD_SIZE)',
  content: {
    'multipart/form-data': {
      schema: {
        type: 'object',
        properties: {
          trend: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,63}$', description: 'an active trend' },
          user: { type: 'string', minLength: 1, maxLength: 200, description: 'whose generation it is' },
          variants: { type: 'integer', minimum: 1, maximum: 4, default: 3 },
          photo: { type: 'string', format: 'binary', description: 'PNG, JPEG or WebP' },
        },
        required: ['trend', 'user', 'photo'],
      },
    },
  },
};

const createGenerationSchema = {
  summary:
    'Start a generation: multipart trend, user, photo, variants (1–4); Idempotency-Key makes retries safe',
  operationId: 'createGeneration',
  tags: ['generations'],
  headers: {
    type: 'object',
    properties: {
      'idempotency-key': {
        type: 'string',
        description:
          '1–200 letters, digits or . _ : -; a retry with the same key answers the same generation',
      },
    },
  },
  [DOC_ONLY_BODY]: generationForm,
  response: {
    202: {
      description: 'Accepted: committed, then queued; GET it to follow it',
      type: 'object',
      properties: {
        id: { type: 'string', format: 'uuid' },
        status: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed'] },
      },
      additionalProperties: true,
    },
    ...errors(400, 413, 415, 422, ...CLIENT_ERRORS),
  },
};

const getGenerationSchema = {
  summary: 'One generation with its outputs',
  operationId: 'getGeneration',
  tags: ['generations'],
  params: {
    type: 'object',
    properties: { id: { type: 'string', description: 'The id POST answered (a UUID)' } },
    required: ['id'],
  },
  response: {
    200: { description: 'The generation', $ref: 'Generation#' },
    ...errors(404, ...CLIENT_ERRORS),
  },
};

const listGenerationsSchema = {
  summary: "A user's generations, or with the admin token everyone's, newest first",
  operationId: 'listGenerations',
  tags: ['generations'],
  querystring: {
    type: 'object',
    properties: {
      user: {
        type: 'string',
        minLength: 1,
        description: "Whose; left out, the newest of every user's (the admin token or console only)",
      },
      limit: { type: 'integer', minimum: 1, maximum: 100, default: 100 },
    },
  },
  response: {
    200: {
      description: 'The generations, newest first',
      type: 'object',
      properties: { generations: { type: 'array', items: { $ref: 'Generation#' } } },
      additionalProperties: true,
    },
    ...errors(400, ...CLIENT_ERRORS),
  },
};

export function generationRoutes(deps: ApiDeps): FastifyPluginAsync {
  const admin = requireRole(deps.tokens, 'admin');
  const client = requireRole(deps.tokens, 'client');
  return async (app) => {
    app.post(
      '/generations',
      {
        preHandler: client,
        schema: createGenerationSchema,
      },
      async (request, reply) => {
        const idempotencyKey = request.headers['idempotency-key'];
        if (
          idempotencyKey !== undefined &&
          (typeof idempotencyKey !== 'string' || !/^[\w.:-]{1,200}$/.test(idempotencyKey))
        ) {
          throw new HttpError(
            400,
            'invalid_request',
            'Idempotency-Key must be 1–200 letters, digits or . _ : -',
          );
        }
        const form = await readGenerationForm(request, deps);
        // The row is committed before the job is queued (I4); if Redis is down now, the reconciler queues it later.
        const { generation, created } = await createGeneration(deps.sql, {
          userId: form.user,
          trend: form.trend,
          variants: form.variants,
          photoKey: form.photo.key,
          idempotencyKey,
        });
        if (created) {
          await enqueueWithin(deps.queue, [generation.id]).catch((error) =>
            request.log.warn(
              { err: error, generation: generation.id },
              'enqueue failed; the reconciler will queue it',
            ),
          );
        }
        return reply.status(202).send({ id: generation.id, status: generation.status });
      },
    );

    app.get(
      '/generations/:id',
      {
        preHandler: client,
        schema: getGenerationSchema,
      },
      async (request) =>
        presentGeneration(await getGeneration(deps.sql, (request.params as { id: string }).id)),
    );

    app.get(
      '/generations',
      {
        preHandler: client,
        schema: listGenerationsSchema,
      },
      async (request, reply) => {
        const { user, limit } = request.query as { user?: string; limit: number };
        // Every user's at once is an operator's view: the client token reads one user's at a time.
        if (user === undefined) await admin(request, reply);
        return { generations: (await listGenerations(deps.sql, user, limit)).map(presentGeneration) };
      },
    );
  };
}
