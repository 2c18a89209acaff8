import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../deploy/deploy-files.ts';
import { fakePng, SAMPLE_PROMPT, startTestApi, type TestApi } from '../support/api.ts';
import { testRedisUrl } from '../support/database.ts';
import { postGeneration, samplePhoto, startTestWorker, waitForStatus } from '../support/generation.ts';
import { type ServedApi, startServedApi } from '../support/served.ts';
import { tempDir } from '../support/temp.ts';

const REDOCLY = path.join(ROOT, 'node_modules/.bin/redocly');
const METHODS = ['get', 'put', 'post', 'patch', 'delete'] as const;

interface Operation {
  operationId?: string;
  security?: unknown[];
  responses: Record<string, { description: string; content?: Record<string, { schema: { $ref?: string } }> }>;
}
type Document = { paths: Record<string, Partial<Record<(typeof METHODS)[number], Operation>>> };

function operations(doc: Document): Array<{ method: string; path: string; op: Operation }> {
  return Object.entries(doc.paths).flatMap(([p, item]) =>
    METHODS.filter((m) => item[m]).map((m) => ({ method: m.toUpperCase(), path: p, op: item[m]! })),
  );
}

/** `rule pointer` of each warning redocly.yaml explains. */
function explainedWarnings(): string[] {
  const config = readFileSync(path.join(ROOT, 'redocly.yaml'), 'utf8');
  return [...config.matchAll(/^#\s+([a-z0-9-]+) (#\/\S+) — \S.*$/gm)].map(
    ([, rule, pointer]) => `${rule} ${pointer}`,
  );
}

describe('the OpenAPI document of the real server', () => {
  let served: ServedApi;
  let doc: Document;
  const temp = tempDir('openapi');
  beforeAll(async () => {
    served = await startServedApi();
    const response = await fetch(`${served.baseUrl}/api/docs/json`);
    expect(response.status).toBe(200);
    doc = (await response.json()) as Document;
  });
  afterAll(async () => {
    await served?.stop();
    temp.remove();
  });

  it('passes `redocly lint` with no error, and every warning left is explained in redocly.yaml', () => {
    const file = path.join(temp.dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(doc));
    const lint = spawnSync(
      REDOCLY,
      ['lint', '--config', path.join(ROOT, 'redocly.yaml'), '--format', 'json', file],
      {
        encoding: 'utf8',
        cwd: temp.dir,
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      },
    );
    expect(lint.error).toBeUndefined();
    const report = JSON.parse(lint.stdout) as {
      totals: { errors: number; warnings: number };
      problems: Array<{
        ruleId: string;
        severity: string;
        message: string;
        location: Array<{ pointer: string }>;
      }>;
    };
    const problems = report.problems.map(
      (p) => `${p.severity} ${p.ruleId} ${p.location[0]?.pointer}: ${p.message}`,
    );
    expect(problems.filter((p) => p.startsWith('error'))).toEqual([]);
    expect(report.totals.errors).toBe(0);
    expect(lint.status).toBe(0);
    const warnings = report.problems.map((p) => `${p.ruleId} ${p.location[0]?.pointer}`);
    expect(warnings.filter((w) => !explainedWarnings().includes(w))).toEqual([]);
    // An explanation for a warning that no longer occurs is stale.
    expect(explainedWarnings().filter((w) => !warnings.includes(w))).toEqual([]);
  });

  it('gives every operation an id, its answers with schemas, the shared error body, servers and security', () => {
    const all = operations(doc);
    expect(all.length).toBe(29);
    expect(doc.paths).toHaveProperty(['/api/v1/objects/{key}']);
    expect(Object.keys(doc.paths).filter((p) => /[*]/.test(p))).toEqual([]);
    const full = doc as unknown as {
      servers: Array<{ url: string }>;
      components: { securitySchemes: Record<string, { scheme: string }> };
    };
    expect(full.servers[0]!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(Object.keys(full.components.securitySchemes).sort()).toEqual([
      'adminToken',
      'clientToken',
      'consoleSession',
    ]);
    for (const { method, path: p, op } of all) {
      const where = `${method} ${p}`;
      expect(op.operationId, where).toBeTruthy();
      for (const [status, response] of Object.entries(op.responses)) {
        expect(response.description, `${where} ${status}`).not.toBe('Default Response');
        if (Number(status) >= 400 && where !== 'GET /readyz') {
          expect(response.content?.['application/json']?.schema.$ref, `${where} ${status}`).toBe(
            '#/components/schemas/Error',
          );
        } else if (status !== '304' && status !== '204') {
          expect(response.content, `${where} ${status}`).toBeDefined();
        }
      }
      expect(
        Object.keys(op.responses).filter((s) => s.startsWith('2')),
        where,
      ).not.toEqual([]);
    }
    const requestBodies = Object.fromEntries(
      all.map(({ method, path: p, op }) => [
        `${method} ${p}`,
        Object.keys((op as { requestBody?: { content: object } }).requestBody?.content ?? {}),
      ]),
    );
    expect(requestBodies['POST /api/v1/trends']).toEqual(['application/json']);
    expect(requestBodies['PATCH /api/v1/trends/{slug}']).toEqual(['application/json']);
    expect(requestBodies['PUT /api/v1/prompts/{name}']).toContain('application/yaml');
    expect(requestBodies['PUT /api/v1/trends/{slug}/example']).toContain('multipart/form-data');
    expect(requestBodies['POST /api/v1/generations']).toEqual(['multipart/form-data']);
    const security = (method: string, p: string) =>
      all.find((o) => o.method === method && o.path === p)!.op.security;
    expect(security('DELETE', '/api/v1/users/{user}/data')).toEqual([
      { adminToken: [] },
      { consoleSession: [] },
    ]);
    expect(security('POST', '/api/v1/session')).toEqual([]);
    expect(security('GET', '/healthz')).toEqual([]);
  });

  it("lists every operation and the document's URL in the README's API table", () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('## The API'), readme.indexOf('## A prompt file'));
    for (const { method, path: p } of operations(doc)) expect(table).toContain(`\`${method} ${p}\``);
    expect(table).toContain('`GET /api/docs/json`');
  });
});

describe('response schemas serialize what the routes send, dropping and changing nothing', () => {
  let api: TestApi;
  const sent: Array<{ route: string; status: number; payload: unknown; body: string }> = [];
  const routes: string[] = [];
  beforeAll(async () => {
    api = await startTestApi(
      {},
      {
        beforeReady: (app) => {
          const pending = new WeakMap<object, unknown>();
          app.addHook('preSerialization', async (request, _reply, payload) => {
            pending.set(request, payload);
            return payload;
          });
          app.addHook('onSend', async (request, reply, body) => {
            if (pending.has(request) && typeof body === 'string') {
              sent.push({
                route: `${request.method} ${request.routeOptions.url}`,
                status: reply.statusCode,
                payload: pending.get(request),
                body,
              });
            }
            return body;
          });
        },
      },
    );
    routes.push(api.app.printRoutes({ commonPrefix: false }));
  });
  afterAll(async () => api?.close());

  it('on a tour of every JSON route, its answers and its errors', async () => {
    const inject = (method: string, url: string, options: { headers?: object; payload?: unknown } = {}) =>
      api.app.inject({
        method: method as 'GET',
        url,
        headers: { ...api.admin, ...options.headers },
        payload: options.payload as string,
      });
    const yaml = { 'content-type': 'application/yaml' };
    expect(
      (
        await inject('PUT', '/api/v1/prompts/ghibli-portrait', {
          headers: yaml,
          payload: SAMPLE_PROMPT('ghibli-portrait').replace('gpt-image-1', 'local'),
        })
      ).statusCode,
    ).toBe(201);
    await inject('PUT', '/api/v1/prompts/ghibli-portrait', {
      headers: yaml,
      payload: SAMPLE_PROMPT('ghibli-portrait', 'Paint {subject}').replace('gpt-image-1', 'local'),
    });
    expect(
      (await inject('PUT', '/api/v1/prompts/broken', { headers: yaml, payload: 'name: broken\ntitle: [' }))
        .statusCode,
    ).toBe(422);
    await inject('PUT', '/api/v1/prompts/ghibli-portrait', {
      headers: { ...yaml, 'if-match': '1' },
      payload: SAMPLE_PROMPT('ghibli-portrait', 'Ink {subject}'),
    });
    await inject('GET', '/api/v1/prompts');
    await inject('GET', '/api/v1/prompts/ghibli-portrait');
    await inject('GET', '/api/v1/prompts/ghibli-portrait/versions');
    await inject('GET', '/api/v1/prompts/ghibli-portrait/versions/1');
    await inject('GET', '/api/v1/prompts/ghibli-portrait/versions/9');
    await inject('POST', '/api/v1/prompts/ghibli-portrait/restore', { payload: { version: 1 } });
    await inject('POST', '/api/v1/prompts/ghibli-portrait/restore', { payload: { version: 'one' } });
    await inject('POST', '/api/v1/trends', {
      payload: {
        slug: 'ghibli',
        title: 'Ghibli',
        emoji: '🎨',
        prompt: 'ghibli-portrait',
        params: { seed: 3, hd: true },
      },
    });
    await inject('POST', '/api/v1/trends', {
      payload: { slug: 'ghibli', title: 'Again', prompt: 'ghibli-portrait' },
    });
    await inject('POST', '/api/v1/trends', { payload: { slug: 'x', title: 'X', prompt: 'missing' } });
    await inject('PATCH', '/api/v1/trends/ghibli', { payload: { description: 'soft light', position: 2 } });
    await inject('PUT', '/api/v1/trends/ghibli/example', {
      headers: { 'content-type': 'image/png' },
      payload: fakePng(2048) as never,
    });
    // The document names the key one path parameter: its slashes may come as they are or encoded.
    const example = (await inject('GET', '/api/v1/trends/ghibli')).json().example as { key: string };
    const encoded = await inject('GET', `/api/v1/objects/${encodeURIComponent(example.key)}`);
    expect(encoded.statusCode).toBe(200);
    expect(encoded.headers.etag).toBe(`"${example.key.split('/').pop()!.split('.')[0]}"`);
    await inject('GET', '/api/v1/trends?all=true');
    await inject('GET', '/api/v1/trends/ghibli');
    await inject('GET', '/api/v1/trends/nope');
    await inject('GET', '/api/v1/objects/example/00/nope.png');
    expect(
      (await api.app.inject({ method: 'DELETE', url: '/api/v1/users/x/data', headers: api.client }))
        .statusCode,
    ).toBe(403);
    expect((await api.app.inject({ method: 'GET', url: '/api/v1/trends' })).statusCode).toBe(401);

    const worker = startTestWorker(api, { redisUrl: testRedisUrl() });
    try {
      const accepted = await postGeneration(
        api,
        { trend: 'ghibli', user: 'ann', variants: '2' },
        await samplePhoto(4),
      );
      expect(accepted.statusCode).toBe(202);
      await waitForStatus(api, accepted.body.id, ['succeeded']);
    } finally {
      await worker.close();
    }
    await inject('GET', '/api/v1/generations?user=ann');
    await inject('GET', '/api/v1/generations/00000000-0000-0000-0000-000000000000');
    await api.db
      .sql`insert into backup_runs (started_at, finished_at, status, targets, bytes_added, error, snapshot_id)
      values (now(), now(), 'partial', ${api.db.sql.json([
        { name: 'local', ok: true, snapshots: 2 },
        { name: 's3', ok: false, error: 'gone' },
      ])}, 77, 's3: gone', 'abc')`;
    await api.db
      .sql`insert into drill_runs (finished_at, status, snapshot_id, target, recovery_seconds, reason)
      values (now(), 'failed', 'abc', 'local', 1.5, 'a table differs')`;
    await inject('GET', '/api/v1/backups');
    await inject('DELETE', '/api/v1/users/ann/data');
    await inject('GET', '/readyz');
    await inject('GET', '/healthz');

    const seen = new Set(sent.map((s) => `${s.route} ${s.status}`));
    for (const expected of [
      'PUT /api/v1/prompts/:name 201',
      'PUT /api/v1/prompts/:name 200',
      'PUT /api/v1/prompts/:name 422',
      'PUT /api/v1/prompts/:name 409',
      'GET /api/v1/prompts 200',
      'GET /api/v1/prompts/:name 200',
      'GET /api/v1/prompts/:name/versions 200',
      'GET /api/v1/prompts/:name/versions/:version 200',
      'GET /api/v1/prompts/:name/versions/:version 404',
      'POST /api/v1/prompts/:name/restore 200',
      'POST /api/v1/prompts/:name/restore 400',
      'POST /api/v1/trends 201',
      'POST /api/v1/trends 409',
      'POST /api/v1/trends 422',
      'PATCH /api/v1/trends/:slug 200',
      'PUT /api/v1/trends/:slug/example 200',
      'GET /api/v1/trends 200',
      'GET /api/v1/trends 401',
      'GET /api/v1/trends/:slug 200',
      'GET /api/v1/trends/:slug 404',
      'GET /api/v1/objects/* 404',
      'DELETE /api/v1/users/:user/data 403',
      'DELETE /api/v1/users/:user/data 200',
      'POST /api/v1/generations 202',
      'GET /api/v1/generations/:id 200',
      'GET /api/v1/generations/:id 404',
      'GET /api/v1/generations 200',
      'GET /api/v1/backups 200',
      'GET /readyz 200',
      'GET /healthz 200',
    ])
      expect(seen, expected).toContain(expected);
    for (const { route, status, payload, body } of sent) {
      expect(JSON.parse(body), `${route} ${status}`).toEqual(JSON.parse(JSON.stringify(payload)));
    }
    const generation = sent.findLast((s) => s.route === 'GET /api/v1/generations/:id' && s.status === 200)!;
    expect(JSON.parse(generation.body).outputs).toHaveLength(2);
    const invalid = sent.find((s) => s.status === 422 && s.route.startsWith('PUT'))!;
    expect(JSON.parse(invalid.body).error).toMatchObject({ code: 'invalid_prompt', line: 2 });
  });

  it('the document covers every route the server has (bar its own pages)', async () => {
    const doc = (await api.app.inject({ method: 'GET', url: '/api/docs/json' })).json() as Document;
    const documented = new Set(
      operations(doc).map(
        ({ method, path: p }) => `${method} ${p.replace(/\{key\}$/, '*').replace(/\{(\w+)\}/g, ':$1')}`,
      ),
    );
    // printRoutes draws a tree: each line's depth says which earlier line it continues.
    const stack: string[] = [];
    const served: string[] = [];
    for (const line of routes[0]!.split('\n')) {
      const match = /^([│ ]*)[├└]── (\S+) \(([A-Z, ]+)\)/.exec(line);
      if (!match) continue;
      const depth = match[1]!.length / 4;
      stack.length = depth;
      stack.push(match[2]!);
      const full = stack.join('');
      if (full.startsWith('/api/docs') || full.startsWith('/admin')) continue;
      for (const method of match[3]!.split(', ').filter((m) => m !== 'HEAD'))
        served.push(`${method} ${full}`);
    }
    // find-my-way draws a wildcard route without the static part before it.
    const isDocumented = (route: string) =>
      documented.has(route) ||
      (!route.split(' ')[1]!.startsWith('/') &&
        [...documented].some(
          (d) => d.startsWith(route.split(' ')[0]!) && d.endsWith(`/${route.split(' ')[1]}`),
        ));
    expect(served.length).toBeGreaterThan(15);
    expect(served.filter((r) => !isDocumented(r))).toEqual([]);
    expect(served.length).toBe(documented.size);
  });
});
