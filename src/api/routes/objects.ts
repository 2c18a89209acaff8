import type { FastifyPluginAsync } from 'fastify';
import { assertValidKey } from '../../blobstore/blobstore.ts';
import { makePreview, PreviewError } from '../../generation/preview.ts';
import { decodeOneAtATime } from '../../objects/image-check.ts';
import { requireRole } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';
import { CLIENT_ERRORS, errors } from '../openapi.ts';

const PREVIEW_SIDE = 320;

/** A small WebP of an image object, decoded under the same one-at-a-time budget as upload checks. */
async function objectPreview(deps: ApiDeps, key: string) {
  const { body } = await deps.objects.open(key);
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  try {
    return await decodeOneAtATime(() =>
      makePreview(Buffer.concat(chunks), { maxSide: PREVIEW_SIDE, watermark: '' }),
    );
  } catch (error) {
    if (!(error instanceof PreviewError)) throw error;
    throw new HttpError(422, 'not_an_image', `The object ${key} is not an image a preview can be made of.`);
  }
}

export function objectRoutes(deps: ApiDeps): FastifyPluginAsync {
  return async (app) => {
    app.get(
      '/objects/*',
      {
        preHandler: requireRole(deps.tokens, 'client'),
        schema: {
          summary: 'The bytes of one object; ETag is its SHA-256',
          operationId: 'getObject',
          tags: ['objects'],
          params: { type: 'object', properties: { '*': { type: 'string' } } },
          querystring: {
            type: 'object',
            properties: {
              preview: {
                type: 'string',
                enum: ['1'],
                description: `1: a WebP of at most ${PREVIEW_SIDE} px instead of the bytes (the console's gallery)`,
              },
            },
          },
          headers: {
            type: 'object',
            properties: {
              'if-none-match': {
                type: 'string',
                description: 'The ETag you hold: 304 when it is still this object',
              },
            },
          },
          response: {
            200: {
              description: 'The bytes, with the type they were stored with; immutable, cache them',
              content: Object.fromEntries(
                ['image/png', 'image/jpeg', 'image/webp', 'application/octet-stream'].map((type) => [
                  type,
                  { schema: { type: 'string', format: 'binary' } },
                ]),
              ),
            },
            304: { description: 'Not modified: the If-None-Match ETag is this object', type: 'null' },
            ...errors(400, 404, 422, ...CLIENT_ERRORS),
          },
        },
      },
      async (request, reply) => {
        const key = (request.params as { '*': string })['*'];
        assertValidKey(key);
        const record = await deps.objects.find(key);
        if (!record) throw new HttpError(404, 'not_found', `The object ${key} does not exist.`);
        if ((request.query as { preview?: string }).preview === '1') {
          const preview = await objectPreview(deps, key);
          return reply
            .type(preview.contentType)
            .header('etag', `"${record.sha256}-preview"`)
            .header('cache-control', 'private, max-age=86400')
            .header('x-content-type-options', 'nosniff')
            .send(preview.bytes);
        }
        const etag = `"${record.sha256}"`;
        reply
          .header('etag', etag)
          .header('cache-control', 'private, max-age=31536000, immutable')
          .header('x-content-type-options', 'nosniff');
        if (request.headers['if-none-match'] === etag) return reply.status(304).send();
        const { body } = await deps.objects.open(key);
        // Damage found while streaming cuts the response short of its length: the client sees a failed
        // transfer, never wrong bytes under the right ETag. The store records it for alerts and the scrub.
        body.once('error', (error) =>
          request.log.error({ err: error, key }, 'object damaged: the response was cut short'),
        );
        return reply.type(record.contentType).header('content-length', record.size).send(body);
      },
    );
  };
}
