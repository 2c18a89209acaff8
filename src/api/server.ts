import { randomUUID } from 'node:crypto';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { serveAdminPage } from './admin-page.ts';
import type { ApiDeps } from './deps.ts';
import { installErrorHandler } from './errors.ts';
import { addSharedSchemas, swaggerOptions } from './openapi.ts';
import { backupRoutes } from './routes/backups.ts';
import { generationRoutes } from './routes/generations.ts';
import { healthRoutes } from './routes/health.ts';
import { objectRoutes } from './routes/objects.ts';
import { operationsRoutes } from './routes/operations.ts';
import { decodePromptBody, promptHistoryRoutes, promptRoutes } from './routes/prompts.ts';
import { installSessions, sessionRoutes } from './routes/session.ts';
import { trendRoutes } from './routes/trends.ts';
import { userRoutes } from './routes/users.ts';

export type { ApiDeps } from './deps.ts';

const IMAGE_CONTENT_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'application/octet-stream'];
const YAML_CONTENT_TYPES = [
  'application/yaml',
  'application/x-yaml',
  'text/yaml',
  'text/x-yaml',
  'text/plain',
];

export async function buildServer(deps: ApiDeps): Promise<FastifyInstance> {
  const app = Fastify({
    // pino's Logger and Fastify's logger type differ only in generics.
    loggerInstance: deps.logger as unknown as FastifyBaseLogger,
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.-]{1,100}$/.test(given) ? given : randomUUID();
    },
    requestIdHeader: false,
    bodyLimit: 1024 * 1024,
    // Behind a TLS proxy named in TRUST_PROXY, request.protocol is https: the console's cookie is then Secure.
    trustProxy: deps.config.trustProxy,
    return503OnClosing: true,
    forceCloseConnections: false,
    // Errors Fastify raises before routing (a URL whose percent-encoding is malformed) get our shape too.
    frameworkErrors: (error, _request, reply) => {
      const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 400;
      const message =
        error.code === 'FST_ERR_BAD_URL'
          ? 'The request URL is not valid: a % must be followed by two hex digits; percent-encode the path.'
          : 'The request could not be read.';
      void (reply as FastifyReply).status(status).send({ error: { code: 'bad_request', message } });
    },
  });

  // Images arrive as a raw body and are streamed to the spool, never buffered; the limit is enforced there.
  app.addContentTypeParser(IMAGE_CONTENT_TYPES, (_request, payload, done) => done(null, payload));
  app.addContentTypeParser(
    YAML_CONTENT_TYPES,
    { parseAs: 'buffer', bodyLimit: deps.config.limits.maxPromptBytes },
    (_request, body, done) => {
      // Strictly: decoding with replacement characters would store other bytes than the client sent.
      try {
        done(null, decodePromptBody(body as Buffer));
      } catch (error) {
        done(error as Error, undefined);
      }
    },
  );
  await app.register(multipart, {
    limits: { fileSize: deps.config.limits.maxUploadBytes, files: 1, fields: 20, fieldSize: 64 * 1024 },
  });

  addSharedSchemas(app);
  await app.register(swagger, swaggerOptions(deps.config));
  await app.register(swaggerUi, { routePrefix: '/api/docs' });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    deps.metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    deps.metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });

  installErrorHandler(app);
  await installSessions(app, deps);
  await serveAdminPage(app);
  await app.register(healthRoutes(deps));
  await app.register(promptRoutes(deps), { prefix: '/api/v1' });
  await app.register(promptHistoryRoutes(deps), { prefix: '/api/v1' });
  await app.register(trendRoutes(deps), { prefix: '/api/v1' });
  await app.register(objectRoutes(deps), { prefix: '/api/v1' });
  await app.register(generationRoutes(deps), { prefix: '/api/v1' });
  await app.register(userRoutes(deps), { prefix: '/api/v1' });
  await app.register(backupRoutes(deps), { prefix: '/api/v1' });
  await app.register(operationsRoutes(deps), { prefix: '/api/v1' });
  await app.register(sessionRoutes(deps), { prefix: '/api/v1' });
  return app;
}
