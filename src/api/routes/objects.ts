import type { FastifyPluginAsync } from 'fastify';
import { assertValidKey } from '../../blobstore/blobstore.ts';
import { requireRole } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';
import { CLIENT_ERRORS, errors } from '../openapi.ts';

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
            ...errors(400, 404, ...CLIENT_ERRORS),
          },
        },
      },
      async (request, reply) => {
        const key = (request.params as { '*': string })['*'];
        assertValidKey(key);
        const record = await deps.objects.find(key);
        if (!record) throw new HttpError(404, 'not_found', `The object ${key} does not exist.`);
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
