import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedRedis } from '../../src/embedded/redis.ts';
import { waitFor } from '../../src/lib/process.ts';
import { saveDoctorReport } from '../../src/ops/doctor/reports.ts';
import { sampleRecoveryPoints } from '../../src/ops/recovery-samples.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { createTrendWithPrompt, postGeneration, samplePhoto } from '../support/generation.ts';
import { tempDir } from '../support/temp.ts';

describe('what the console reads and starts: doctor, drills, timeline, previews, a user before deletion', () => {
  const temp = tempDir('operations-api');
  // A Redis of its own: the backup takes an RDB of it, and the shared test Redis holds other files' keys.
  const redis = new EmbeddedRedis({ root: temp.dir, port: 0, appendfsync: 'everysec' });
  let api: TestApi;
  beforeAll(async () => {
    const running = await redis.start();
    api = await startTestApi({ REDIS_URL: running.url }, { redisUrl: running.url });
  });
  afterAll(async () => {
    await api?.close();
    await redis.stop();
    temp.remove();
  });
  const get = async (url: string) => {
    const response = await api.app.inject({ method: 'GET', url, headers: api.admin });
    expect(response.statusCode, response.body).toBe(200);
    return response.json();
  };

  it('GET /doctor: nothing before the first report, then the newest report with its time', async () => {
    expect(await get('/api/v1/doctor')).toEqual({ takenAt: null, ok: null, checks: [] });
    await saveDoctorReport(api.db.sql, {
      ok: false,
      checks: [
        { id: 'postgres.fsync', status: 'OK', message: 'fsync is on.' },
        { id: 'backup.local.fresh', status: 'FAIL', message: 'No backup yet.', hint: 'Run trendgen backup.' },
      ],
    });
    const report = await get('/api/v1/doctor');
    expect(report.takenAt).toMatch(/^\d{4}-/);
    expect(report.checks.map((c: { status: string }) => c.status)).toEqual(['OK', 'FAIL']);
    expect(report.checks[1].hint).toBe('Run trendgen backup.');
    const client = await api.app.inject({ method: 'GET', url: '/api/v1/doctor', headers: api.client });
    expect(client.statusCode).toBe(403);
  });

  it('a backup shows on the timeline with the lag samples; a drill runs, shows as running, then passes', async () => {
    await createTrendWithPrompt(api);
    expect(
      (await api.app.inject({ method: 'POST', url: '/api/v1/backups', headers: api.admin })).statusCode,
    ).toBe(202);
    const snapshotId = await waitFor(
      'the backup to finish',
      async () => {
        const run = (await get('/api/v1/backups')).backups[0];
        return run?.status === 'succeeded' ? (run.snapshotId as string) : undefined;
      },
      60_000,
      200,
    );
    // No continuous protection runs here: the sampler finds no source, and a sample written as it would be is
    // read back.
    expect(await sampleRecoveryPoints(api.db.sql, api.config)).toBe(0);
    await api.db.sql`insert into recovery_point_samples (taken_at, source, target, lag_seconds)
      values (now() - interval '2 minutes', 'postgres', 'local', 0.8),
             (now() - interval '9 days', 'postgres', 'local', 99)`;
    const timeline = await get('/api/v1/backups/timeline?days=7');
    expect(timeline.snapshots.map((s: { snapshotId: string }) => s.snapshotId)).toContain(snapshotId);
    expect(timeline.lag).toEqual([
      expect.objectContaining({ source: 'postgres', target: 'local', lagSeconds: 0.8 }),
    ]);
    expect(
      (await api.app.inject({ url: '/api/v1/backups/timeline?days=90', headers: api.admin })).statusCode,
    ).toBe(400);

    const started = await api.app.inject({ method: 'POST', url: '/api/v1/drills', headers: api.admin });
    expect(started.statusCode, started.body).toBe(202);
    const { id } = started.json();
    const again = await api.app.inject({ method: 'POST', url: '/api/v1/drills', headers: api.admin });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('drill_running');
    expect((await get('/api/v1/drills')).drills[0]).toMatchObject({
      id,
      status: 'running',
      finishedAt: null,
    });
    const drill = await waitFor(
      'the drill to finish',
      async () => {
        const newest = (await get('/api/v1/drills')).drills.find((d: { id: number }) => d.id === id);
        return newest?.status === 'running' ? undefined : newest;
      },
      120_000,
      500,
    );
    expect(drill, JSON.stringify(drill)).toMatchObject({ status: 'passed', snapshotId, target: 'local' });
    expect(drill.recoverySeconds).toBeGreaterThan(0);
    expect(drill.checks.length).toBeGreaterThan(3);
    // The backups view's last drill is the same one.
    expect((await get('/api/v1/backups')).lastDrill).toMatchObject({ status: 'passed', snapshotId });
  }, 180_000);

  it('a drill whose process died shows as failed after hours, not running forever', async () => {
    await api.db
      .sql`insert into drill_runs (started_at, target) values (now() - interval '7 hours', 'local')`;
    const stale = (await get('/api/v1/drills?limit=200')).drills.find(
      (d: { startedAt: string }) => Date.parse(d.startedAt) < Date.now() - 6 * 3600_000,
    );
    expect(stale).toMatchObject({ status: 'failed', reason: expect.stringMatching(/never finished/) });
  });

  it('?preview=1 answers a small WebP of an image object; the bytes stay behind the plain URL', async () => {
    const photo = await samplePhoto(7, 900);
    const posted = await postGeneration(api, { trend: 'ghibli', user: 'preview-user' }, photo);
    expect(posted.statusCode, JSON.stringify(posted.body)).toBe(202);
    const [row] = await api.db.sql`select photo_key from generations where id = ${posted.body.id}`;
    const key = row!.photo_key as string;
    const full = await api.app.inject({ url: `/api/v1/objects/${key}`, headers: api.admin });
    expect(full.rawPayload.equals(photo)).toBe(true);
    const preview = await api.app.inject({ url: `/api/v1/objects/${key}?preview=1`, headers: api.admin });
    expect(preview.statusCode).toBe(200);
    expect(preview.headers['content-type']).toBe('image/webp');
    const sharp = (await import('sharp')).default;
    const meta = await sharp(preview.rawPayload).metadata();
    expect(Math.max(meta.width ?? 0, meta.height ?? 0)).toBe(320);
    expect(
      (await api.app.inject({ url: `/api/v1/objects/${key}?preview=2`, headers: api.admin })).statusCode,
    ).toBe(400);
  });

  it('GET /users/{user}/data says what a deletion would remove, without what another user shares', async () => {
    const mine = await samplePhoto(11, 64);
    const shared = await samplePhoto(12, 64);
    for (const [user, photo] of [
      ['leaving', mine],
      ['leaving', shared],
      ['staying', shared],
    ] as const) {
      expect((await postGeneration(api, { trend: 'ghibli', user }, photo)).statusCode).toBe(202);
    }
    const summary = await get('/api/v1/users/leaving/data');
    expect(summary).toMatchObject({ user: 'leaving', generations: 2, objects: 1, bytes: mine.length });
    expect(summary.recent).toHaveLength(2);
    const deleted = await api.app.inject({
      method: 'DELETE',
      url: '/api/v1/users/leaving/data',
      headers: api.admin,
    });
    expect(deleted.json()).toMatchObject({ generations: 2, objects: 1 });
    expect(await get('/api/v1/users/leaving/data')).toMatchObject({ generations: 0, objects: 0, bytes: 0 });
    expect((await get('/api/v1/users/staying/data')).objects).toBe(1);
  });
});
