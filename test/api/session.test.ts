import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveAdminPage } from '../../src/api/admin-page.ts';
import { installErrorHandler } from '../../src/api/errors.ts';
import { startTestApi, type TestApi } from '../support/api.ts';

/** The session cookie from a Set-Cookie header, ready to send back. */
function cookieOf(setCookie: string | string[] | undefined): string {
  const line = ([] as string[]).concat(setCookie ?? []).find((c) => c.startsWith('trendgen_session='));
  if (!line) throw new Error('no session cookie was set');
  return line.split(';')[0]!;
}

describe('console sessions: the admin token for an HttpOnly, SameSite=Strict cookie, with CSRF on changes', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => api?.close());

  const login = async () => {
    const response = await api.app.inject({
      method: 'POST',
      url: '/api/v1/session',
      payload: { token: api.adminToken },
    });
    expect(response.statusCode, response.body).toBe(200);
    return {
      cookie: cookieOf(response.headers['set-cookie']),
      ...(response.json() as { csrfToken: string }),
    };
  };

  it('a wrong token, or the client token, opens no session', async () => {
    for (const token of ['nope', api.clientToken]) {
      const response = await api.app.inject({ method: 'POST', url: '/api/v1/session', payload: { token } });
      expect(response.statusCode).toBe(401);
      expect(response.json().error.message).toMatch(/not the admin token/);
      expect(response.headers['set-cookie']).toBeUndefined();
    }
  });

  it('the cookie is HttpOnly, SameSite=Strict, for the whole site, 12 h; PostgreSQL keeps only its hash', async () => {
    const response = await api.app.inject({
      method: 'POST',
      url: '/api/v1/session',
      payload: { token: api.adminToken },
    });
    const line = ([] as string[]).concat(response.headers['set-cookie'] ?? [])[0]!;
    expect(line).toMatch(/HttpOnly/);
    expect(line).toMatch(/SameSite=Strict/);
    expect(line).toMatch(/Path=\//);
    expect(line).toMatch(/Max-Age=43200/);
    const value = cookieOf(line).split('=')[1]!;
    const rows = await api.db.sql`select encode(id_sha256, 'hex') as id, csrf_token from admin_sessions`;
    expect(rows.some((r) => r.id === value || r.csrf_token === value)).toBe(false);
    expect(rows.length).toBeGreaterThan(0);
  });

  it('reads with the cookie; changes need the CSRF header, a forged one is refused', async () => {
    const { cookie, csrfToken } = await login();
    expect((await api.app.inject({ method: 'GET', url: '/api/v1/backups' })).statusCode).toBe(401);
    const read = await api.app.inject({ method: 'GET', url: '/api/v1/prompts', headers: { cookie } });
    expect(read.statusCode).toBe(200);
    const session = await api.app.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie } });
    expect(session.json().csrfToken).toBe(csrfToken);

    const put = (headers: Record<string, string>) =>
      api.app.inject({
        method: 'PUT',
        url: '/api/v1/prompts/console-made',
        headers: { cookie, 'content-type': 'application/yaml', ...headers },
        payload:
          'name: console-made\ntitle: Made in the console\nmodel: local\ntemplate: "a portrait of {subject}"\n',
      });
    const bare = await put({});
    expect(bare.statusCode).toBe(403);
    expect(bare.json().error.code).toBe('csrf');
    expect((await put({ 'x-csrf-token': `${csrfToken.slice(0, -1)}x` })).statusCode).toBe(403);
    expect((await api.app.inject({ method: 'GET', url: '/api/v1/prompts/console-made' })).statusCode).toBe(
      401,
    );
    const made = await put({ 'x-csrf-token': csrfToken });
    expect(made.statusCode, made.body).toBe(201);
  });

  it('logout ends the session on the server, not only in the browser', async () => {
    const { cookie, csrfToken } = await login();
    expect(
      (await api.app.inject({ method: 'DELETE', url: '/api/v1/session', headers: { cookie } })).statusCode,
    ).toBe(403);
    const out = await api.app.inject({
      method: 'DELETE',
      url: '/api/v1/session',
      headers: { cookie, 'x-csrf-token': csrfToken },
    });
    expect(out.statusCode).toBe(204);
    expect(String(out.headers['set-cookie'])).toMatch(/Max-Age=0/);
    // The old cookie, replayed: gone.
    expect(
      (await api.app.inject({ method: 'GET', url: '/api/v1/prompts', headers: { cookie } })).statusCode,
    ).toBe(401);
    expect(
      (await api.app.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie } })).statusCode,
    ).toBe(401);
  });

  it('is Secure only behind a proxy named in TRUST_PROXY that says the request came over TLS', async () => {
    const forwarded = { 'x-forwarded-proto': 'https' };
    const direct = await api.app.inject({
      method: 'POST',
      url: '/api/v1/session',
      headers: forwarded,
      payload: { token: api.adminToken },
    });
    // Not trusted (the default): anyone could send the header, so it changes nothing.
    expect(String(direct.headers['set-cookie'])).not.toMatch(/Secure/);
    const proxied = await startTestApi({ TRUST_PROXY: '127.0.0.1' });
    try {
      const behind = await proxied.app.inject({
        method: 'POST',
        url: '/api/v1/session',
        headers: forwarded,
        payload: { token: proxied.adminToken },
      });
      expect(String(behind.headers['set-cookie'])).toMatch(/; Secure/);
    } finally {
      await proxied.close();
    }
  });

  it('an expired session opens nothing', async () => {
    const { cookie } = await login();
    await api.db.sql`update admin_sessions set expires_at = now() - interval '1 second'`;
    expect(
      (await api.app.inject({ method: 'GET', url: '/api/v1/prompts', headers: { cookie } })).statusCode,
    ).toBe(401);
  });

  it('a bearer token decides on its own: a valid cookie does not rescue a wrong token', async () => {
    const { cookie } = await login();
    const response = await api.app.inject({
      method: 'GET',
      url: '/api/v1/backups',
      headers: { cookie, authorization: 'Bearer wrong' },
    });
    expect(response.statusCode).toBe(401);
  });
});

describe('the console page', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'admin-page-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const serve = async (root: string) => {
    const app = Fastify();
    installErrorHandler(app);
    await serveAdminPage(app, root);
    await app.ready();
    return app;
  };

  it('is served with a policy that allows only its own script, style and images, and no framing', async () => {
    writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>console</title>');
    const app = await serve(dir);
    expect((await app.inject({ url: '/admin' })).headers.location).toBe('/admin/');
    const page = await app.inject({ url: '/admin/' });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<title>console</title>');
    expect(page.headers['content-security-policy']).toMatch(/script-src 'self'/);
    expect(page.headers['content-security-policy']).toMatch(/frame-ancestors 'none'/);
    expect((await app.inject({ url: '/admin/../package.json' })).statusCode).not.toBe(200);
    await app.close();
  });

  it('says how to build it when it is not built', async () => {
    const app = await serve(path.join(dir, 'missing'));
    const page = await app.inject({ url: '/admin/' });
    expect(page.statusCode).toBe(503);
    expect(page.json().error.message).toMatch(/npm run build:admin/);
    await app.close();
  });
});
