import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedRedis } from '../../src/embedded/redis.ts';
import { waitFor } from '../../src/lib/process.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { tempDir } from '../support/temp.ts';

describe('backups API', () => {
  const temp = tempDir('backups-api');
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

  it('POST starts a backup now; GET shows it per target with the next scheduled run', async () => {
    expect(
      (await api.app.inject({ method: 'POST', url: '/api/v1/backups', headers: api.client })).statusCode,
    ).toBe(403);
    const started = await api.app.inject({ method: 'POST', url: '/api/v1/backups', headers: api.admin });
    expect(started.statusCode).toBe(202);
    const view = await waitFor(
      'the backup to finish',
      async () => {
        const body = (
          await api.app.inject({ method: 'GET', url: '/api/v1/backups', headers: api.admin })
        ).json();
        return body.backups[0]?.status === 'succeeded' ? body : undefined;
      },
      60_000,
      200,
    );
    expect(view.backups[0].snapshotId).toMatch(/^[0-9a-f]{64}$/);
    // Started over the API, not by the schedule: tagged so, and it prunes nothing.
    expect(view.backups[0].tags).toEqual(['api']);
    expect(view.backups[0].targets).toEqual([expect.objectContaining({ name: 'local', ok: true })]);
    expect(view.targets.local.lastSuccessAt).toBeTruthy();
    expect(view.schedule.nextBackupAt).toMatch(/^\d{4}-/);
    expect(view.lastDrill).toBeNull();
    // I11: continuous protection's state is part of the same view; nothing streams in this test.
    expect(view.continuous).toMatchObject({ continuous: true, mode: 'async', stall: null, sources: [] });
  });
});
