import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedRedis } from '../../src/embedded/redis.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import {
  generationLoad,
  percentile,
  seedLoadTrend,
  successesInLogs,
  waitForEnds,
} from '../support/generation-load.ts';
import { type ServiceProcess, startService, startUp, type UpProcess } from '../support/processes.ts';
import { tempDir } from '../support/temp.ts';

const GENERATIONS = 60;
const VARIANTS = 1;

/**
 * Level 3's application side: two `trendgen serve` and three `trendgen worker` processes on one PostgreSQL and
 * one Redis, as replicas in a cluster would run. A load of generations through both APIs: each is rendered by
 * exactly one worker, once (one lease taken, one "generation succeeded"), none is lost, all succeed.
 */
describe('scale-out: two APIs and three workers on one database and Redis', { timeout: 180_000 }, () => {
  const temp = tempDir('scale-out');
  // Its own Redis: the workers take every job of BullMQ's default queue, so they must not share the run's.
  const redis = new EmbeddedRedis({ root: path.join(temp.dir, 'redis'), port: 0, appendfsync: 'everysec' });
  let db: TestDatabase;
  const apis: UpProcess[] = [];
  const workers: ServiceProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await redis.start();
  });

  afterAll(async () => {
    await Promise.all([...apis, ...workers].map((p) => p.stop().catch(() => null)));
    await redis.stop();
    await db?.drop();
    temp.remove();
  });

  it(`runs ${GENERATIONS} generations sent to both APIs, each once, none lost`, async () => {
    const running = await redis.findRunning();
    const env = {
      DATABASE_URL: db.url,
      REDIS_URL: running!.url,
      DATA_DIR: path.join(temp.dir, 'data'),
      PROMPTS_DIR: path.join(temp.dir, 'prompts'),
      BACKUP_DIR: path.join(temp.dir, 'backups'),
      ADMIN_TOKEN: 'scale-admin-token-0123456789',
      API_TOKEN: 'scale-client-token-0123456789',
      BACKUP_CONTINUOUS: 'off',
      WORKER_CONCURRENCY: '2',
    };
    const [apiOne, apiTwo, ...started] = await Promise.all([
      startUp(env, { command: 'serve' }),
      startUp(env, { command: 'serve' }),
      ...[0, 1, 2].map(() => startService('worker', { ...env, LOG_LEVEL: 'info' }, /"worker started"/)),
    ]);
    apis.push(apiOne as UpProcess, apiTwo as UpProcess);
    workers.push(...(started as ServiceProcess[]));
    await seedLoadTrend(apis[0]!.baseUrl, { authorization: `Bearer ${env.ADMIN_TOKEN}` });

    const began = Date.now();
    const load = generationLoad({
      baseUrls: apis.map((api) => api.baseUrl),
      client: { authorization: `Bearer ${env.API_TOKEN}` },
      clients: 6,
      count: GENERATIONS,
      variants: VARIANTS,
    });
    await load.done;
    expect(load.refused).toEqual([]);
    const ids = load.accepted.map((a) => a.id);
    expect(new Set(ids).size).toBe(GENERATIONS);
    const ends = await waitForEnds(db.sql, ids, 60_000);
    const tookMs = Date.now() - began;

    expect(
      ends.filter((end) => end.status !== 'succeeded'),
      'not succeeded',
    ).toEqual([]);
    expect(
      ends.filter((end) => end.outputs !== VARIANTS),
      'outputs missing',
    ).toEqual([]);
    // A worker renders only under the lease it took: one lease per generation is one render.
    expect(
      ends.filter((end) => end.attempts !== 1),
      'rendered more than once',
    ).toEqual([]);
    const perWorker = workers.map((worker) => successesInLogs([worker.output()]));
    const all = successesInLogs(workers.map((worker) => worker.output()));
    expect(
      ids.filter((id) => all.get(id) !== 1),
      'not finished exactly once',
    ).toEqual([]);
    // The work was shared: every worker finished some.
    const counts = perWorker.map((finished) => finished.size);
    expect(
      counts.every((n) => n > 0),
      `per worker: ${counts.join(', ')}`,
    ).toBe(true);
    const latencies = load.accepted.map((a) => a.ackedAt - a.sentAt);
    console.log(
      `scale-out: ${GENERATIONS} generations of ${VARIANTS} variants through 2 APIs, all succeeded once, ` +
        `in ${(tookMs / 1000).toFixed(1)} s; per worker ${counts.join(', ')}; ` +
        `POST /generations p50 ${percentile(latencies, 50)} ms, max ${Math.max(...latencies)} ms`,
    );
  });
});
