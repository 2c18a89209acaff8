import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from './errors.ts';

export interface Tokens {
  admin: string;
  /** Unset: only the admin token opens client routes. */
  client: string | undefined;
}

export type Role = 'admin' | 'client';

function same(a: string, b: string): boolean {
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

/** A preHandler that lets the request through only with a token for `role` (the admin token opens everything). */
export function requireRole(tokens: Tokens, role: Role) {
  return async (request: FastifyRequest, _reply: FastifyReply) => {
    const token = bearer(request);
    if (!token) throw new HttpError(401, 'unauthorized', 'This route needs an Authorization: Bearer token.');
    if (same(token, tokens.admin)) return;
    if (role === 'client' && tokens.client && same(token, tokens.client)) return;
    if (role === 'admin' && tokens.client && same(token, tokens.client)) {
      throw new HttpError(
        403,
        'forbidden',
        'This route needs the admin token; the client token cannot change data.',
      );
    }
    throw new HttpError(401, 'unauthorized', 'The token is not valid.');
  };
}
