import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from './errors.ts';
import { type AdminSession, CSRF_HEADER } from './sessions.ts';

export interface Tokens {
  admin: string;
  /** Unset: only the admin token opens client routes. */
  client: string | undefined;
}

export type Role = 'admin' | 'client';

declare module 'fastify' {
  interface FastifyRequest {
    /** The console session the request's cookie names, when it names a live one (set by the session plugin). */
    adminSession: AdminSession | null;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  // RFC 7235/6750: the scheme, one or more spaces, then printable ASCII. `\s` would also take a non-breaking
  // or other Unicode space, which no client sends and a token copied from a document may hide.
  const match = /^Bearer +([\x21-\x7e]+)$/i.exec(header);
  return match?.[1];
}

/**
 * A console session opens what the admin token opens. A cookie travels with every request the browser makes,
 * including ones another site causes, so a write also needs the session's CSRF token in a header, which
 * only the console's own page can read.
 */
function checkSession(request: FastifyRequest, session: AdminSession): void {
  if (SAFE_METHODS.has(request.method)) return;
  const sent = request.headers[CSRF_HEADER];
  if (typeof sent !== 'string' || !sameSecret(sent, session.csrfToken)) {
    throw new HttpError(
      403,
      'csrf',
      `A change made with the console's session needs its ${CSRF_HEADER} header; reload the console and try again.`,
    );
  }
}

/** A preHandler that lets the request through only with a token for `role` (the admin token opens everything). */
export function requireRole(tokens: Tokens, role: Role) {
  return async (request: FastifyRequest, _reply: FastifyReply) => {
    const token = bearer(request);
    if (!token) {
      if (request.adminSession) return checkSession(request, request.adminSession);
      throw new HttpError(401, 'unauthorized', 'This route needs an Authorization: Bearer token.');
    }
    if (sameSecret(token, tokens.admin)) return;
    if (role === 'client' && tokens.client && sameSecret(token, tokens.client)) return;
    if (role === 'admin' && tokens.client && sameSecret(token, tokens.client)) {
      throw new HttpError(
        403,
        'forbidden',
        'This route needs the admin token; the client token cannot change data.',
      );
    }
    throw new HttpError(401, 'unauthorized', 'The token is not valid.');
  };
}
