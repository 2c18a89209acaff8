import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { HttpError } from './errors.ts';

/** Where `npm run build:admin` (run by `npm ci`) writes the console's page. */
export const ADMIN_PAGE_DIR = fileURLToPath(new URL('../../dist/admin/', import.meta.url));

// The page loads only its own script, style and the API's images: an injected script tag or a framing site
// gets nothing.
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/** The operator console at /admin/: a built page of static files; what it shows comes from the API. */
export async function serveAdminPage(app: FastifyInstance, dir = ADMIN_PAGE_DIR): Promise<void> {
  app.get('/admin', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/admin/', 302));
  if (!existsSync(`${dir}/index.html`)) {
    app.get('/admin/*', { schema: { hide: true } }, async () => {
      throw new HttpError(
        503,
        'console_not_built',
        'The operator console is not built: run `npm run build:admin` (npm ci runs it) and restart.',
      );
    });
    return;
  }
  await app.register(fastifyStatic, {
    root: dir,
    prefix: '/admin/',
    decorateReply: false,
    schemaHide: true,
    // Fixed file names: the browser revalidates (ETag) instead of holding an old page after an upgrade.
    cacheControl: false,
    setHeaders: (response) => {
      response.header('cache-control', 'no-cache');
      response.header('content-security-policy', CONTENT_SECURITY_POLICY);
      response.header('x-content-type-options', 'nosniff');
      response.header('referrer-policy', 'no-referrer');
    },
  });
}
