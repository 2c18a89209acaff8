import cookie from '@fastify/cookie';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { requireRole, sameSecret } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';
import { errors } from '../openapi.ts';
import { closeSession, findSession, openSession, SESSION_COOKIE, SESSION_TTL_SECONDS } from '../sessions.ts';

/** Every request's console session, looked up from its cookie before any route's token check. */
export async function installSessions(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  await app.register(cookie);
  app.decorateRequest('adminSession', null);
  app.addHook('onRequest', async (request) => {
    const id = request.cookies[SESSION_COOKIE];
    // A bearer token decides on its own; the cookie is only looked up when it could open something.
    if (!id || request.headers.authorization) return;
    request.adminSession = (await findSession(deps.sql, id)) ?? null;
  });
}

function setCookie(request: FastifyRequest, reply: FastifyReply, value: string, maxAge: number): void {
  reply.setCookie(SESSION_COOKIE, value, {
    path: '/',
    httpOnly: true,
    sameSite: 'strict',
    // Behind TLS (directly, or a proxy that says so with trustProxy), the browser must never send it in clear.
    secure: request.protocol === 'https',
    maxAge,
  });
}

const sessionBody = {
  type: 'object',
  properties: {
    csrfToken: {
      type: 'string',
      description: 'Send it as X-CSRF-Token with every change made with the cookie',
    },
    expiresAt: { type: 'string', format: 'date-time' },
  },
  required: ['csrfToken', 'expiresAt'],
  additionalProperties: true,
};

/** The operator console's login: the admin token exchanged for an HttpOnly, SameSite=Strict session cookie. */
export function sessionRoutes(deps: ApiDeps): FastifyPluginAsync {
  return async (app) => {
    app.post(
      '/session',
      {
        schema: {
          summary: 'Log in to the console: the admin token for a session cookie',
          operationId: 'openSession',
          tags: ['session'],
          security: [],
          body: {
            type: 'object',
            properties: { token: { type: 'string', minLength: 1, maxLength: 1024 } },
            required: ['token'],
          },
          response: {
            200: {
              description: `Logged in: Set-Cookie ${SESSION_COOKIE} (HttpOnly, SameSite=Strict, ${SESSION_TTL_SECONDS / 3600} h)`,
              ...sessionBody,
            },
            ...errors(400, 401, 500, 503),
          },
        },
      },
      async (request, reply) => {
        const { token } = request.body as { token: string };
        if (!sameSecret(token, deps.tokens.admin)) {
          throw new HttpError(
            401,
            'unauthorized',
            'That is not the admin token; the console needs ADMIN_TOKEN.',
          );
        }
        const session = await openSession(deps.sql);
        setCookie(request, reply, session.id, SESSION_TTL_SECONDS);
        request.log.info('console login');
        return { csrfToken: session.csrfToken, expiresAt: session.expiresAt.toISOString() };
      },
    );

    app.get(
      '/session',
      {
        schema: {
          summary: 'The console session the cookie names, with its CSRF token',
          operationId: 'getSession',
          tags: ['session'],
          security: [],
          response: { 200: { description: 'Logged in', ...sessionBody }, ...errors(401, 500, 503) },
        },
      },
      async (request) => {
        const session = request.adminSession;
        if (!session)
          throw new HttpError(401, 'unauthorized', 'Not logged in to the console, or the session expired.');
        return { csrfToken: session.csrfToken, expiresAt: session.expiresAt.toISOString() };
      },
    );

    app.delete(
      '/session',
      {
        // With the cookie, the CSRF header is checked here like on every other change.
        preHandler: requireRole(deps.tokens, 'admin'),
        schema: {
          summary: 'Log out of the console (needs X-CSRF-Token)',
          operationId: 'closeSession',
          tags: ['session'],
          security: [],
          response: {
            204: {
              description: 'Logged out: the session is gone on the server and the cookie cleared',
              type: 'null',
            },
            ...errors(401, 403, 500, 503),
          },
        },
      },
      async (request, reply) => {
        const session = request.adminSession;
        const id = request.cookies[SESSION_COOKIE];
        if (!session || !id) throw new HttpError(401, 'unauthorized', 'Not logged in to the console.');
        await closeSession(deps.sql, id);
        setCookie(request, reply, '', 0);
        return reply.status(204).send();
      },
    );
  };
}
