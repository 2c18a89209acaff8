import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApi, type TestApi } from '../support/api.ts';

describe('health, readiness and backup visibility', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => api?.close());

  it('/healthz answers; /readyz reports every dependency', async () => {
    expect((await api.app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    const ready = await api.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    const names = ready.json().checks.map((c: { name: string }) => c.name);
    expect(names).toEqual([
      'postgres',
      'redis',
      'objects',
      'prompts',
      'object-integrity',
      'backups',
      'continuous',
    ]);
    // I11: no protect process runs here; that is reported without taking the service out.
    expect(ready.json().checks.find((c: { name: string }) => c.name === 'continuous')).toMatchObject({
      ok: false,
      critical: false,
      detail: 'trendgen protect has not reported yet',
    });
  });

  it('I10: a missing or stale backup shows in /readyz (without taking the service out) and in /metrics', async () => {
    const none = (await api.app.inject({ method: 'GET', url: '/readyz' })).json();
    expect(none.checks.find((c: { name: string }) => c.name === 'backups')).toMatchObject({
      ok: false,
      critical: false,
    });
    await api.db.sql`insert into backup_runs (started_at, finished_at, status, targets)
      values (now() - interval '3 hours', now() - interval '3 hours', 'succeeded', ${api.db.sql.json([{ name: 'local', ok: true }])})`;
    const stale = (await api.app.inject({ method: 'GET', url: '/readyz' })).json();
    expect(stale.checks.find((c: { name: string }) => c.name === 'backups').detail).toMatch(
      /no recent backup on local/,
    );
    await api.db.sql`insert into backup_runs (started_at, finished_at, status, targets)
      values (now(), now(), 'succeeded', ${api.db.sql.json([{ name: 'local', ok: true }])})`;
    const fresh = await api.app.inject({ method: 'GET', url: '/readyz' });
    expect(fresh.statusCode).toBe(200);
    expect(fresh.json().checks.find((c: { name: string }) => c.name === 'backups')).toMatchObject({
      ok: true,
    });
    const metrics = (await api.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^trendgen_backup_last_success_timestamp_seconds\{target="local"\} \d+/m);
    expect(metrics).toMatch(/^trendgen_backup_runs\{status="succeeded"\} 2/m);
  });

  it('shows repository size, snapshot count and the last doctor report on /metrics', async () => {
    await api.db.sql`insert into backup_runs (finished_at, status, targets)
      values (now(), 'succeeded', ${api.db.sql.json([{ name: 'local', ok: true, snapshots: 7, repositoryBytes: 123456 }])})`;
    await api.db.sql`insert into doctor_reports (id, report) values (1, ${api.db.sql.json({
      ok: false,
      checks: [
        { id: 'a', status: 'OK', message: '' },
        { id: 'b', status: 'FAIL', message: '' },
      ],
    })})`;
    const metrics = (await api.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^trendgen_backup_repository\{target="local",field="snapshots"\} 7$/m);
    expect(metrics).toMatch(/^trendgen_backup_repository\{target="local",field="bytes"\} 123456$/m);
    expect(metrics).toMatch(/^trendgen_doctor_checks\{status="FAIL"\} 1$/m);
  });
});
