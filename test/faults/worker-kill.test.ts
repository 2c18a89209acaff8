import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reconcile } from '../../src/generation/reconciler.ts';
import { waitFor, waitForExit } from '../../src/services/process-utils.ts';
import { EmbeddedRedis } from '../../src/services/redis.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { seededRandom } from '../support/files.ts';
import { createTrendWithPrompt, postGeneration, samplePhoto } from '../support/generation.ts';
import { CLI } from '../support/processes.ts';
import { tempDir } from '../support/temp.ts';

const KILLS = Number(process.env.WORKER_KILLS ?? 50);

describe('faults: the worker SIGKILLed at random moments', () => {
  const temp = tempDir('worker-kill');
  const redis = new EmbeddedRedis({ root: temp.dir, port: 0, appendfsync: 'everysec' });
  let api: TestApi | undefined;
  let child: ChildProcess | undefined;
  let reconciler: NodeJS.Timeout | undefined;
  afterAll(async () => {
    if (reconciler) clearInterval(reconciler);
    if (child?.pid && child.exitCode === null) child.kill('SIGKILL');
    await api?.close();
    await redis.stop();
    temp.remove();
  });

  it(`every generation ends succeeded or failed with a reason, after ${KILLS} kills; no duplicate outputs`, async () => {
    const seed = Number(process.env.WORKER_KILL_SEED ?? Date.now() % 1_000_000);
    console.log(`worker-kill seed ${seed}`);
    const random = seededRandom(seed);
    const running = await redis.start();
    api = await startTestApi({}, { redisUrl: running.url, queuePrefix: 'bull' });
    await createTrendWithPrompt(api);
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const response = await postGeneration(
        api,
        { trend: 'ghibli', user: `u${i % 5}`, variants: '2' },
        await samplePhoto(i + 1, 64),
      );
      expect(response.statusCode).toBe(202);
      ids.push(response.body.id);
    }
    const sql = api.db.sql;
    reconciler = setInterval(() => void reconcile(sql, api!.queue).catch(() => {}), 500);
    const env = {
      ...process.env,
      DATABASE_URL: api.db.url,
      REDIS_URL: running.url,
      DATA_DIR: path.join(temp.dir, 'worker-data'),
      STORAGE_URL: api.config.storageUrl,
      GENERATION_LEASE_SECONDS: '2',
      GENERATION_MAX_ATTEMPTS: '100',
      WORKER_CONCURRENCY: '2',
      LOG_LEVEL: 'error',
    };
    const startWorker = () =>
      spawn(process.execPath, [CLI, 'worker'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    let killedMidJob = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      child = startWorker();
      await new Promise((resolve) => setTimeout(resolve, 400 + random() * 2200));
      const [row] = await sql`select count(*)::int as n from generations where status = 'running'`;
      if (row!.n > 0) killedMidJob++;
      child.kill('SIGKILL');
      await waitForExit(child.pid!, 10_000);
    }
    child = startWorker();
    await waitFor(
      'every generation to finish',
      async () => {
        const [row] =
          await sql`select count(*)::int as open from generations where status in ('queued', 'running')`;
        return row!.open === 0 ? true : undefined;
      },
      240_000,
      500,
    );
    child.kill('SIGTERM');
    await waitForExit(child.pid!, 30_000);

    const rows =
      await sql`select g.id, g.status, g.error, g.variants, g.attempts, count(o.variant)::int as outputs
      from generations g left join generation_outputs o on o.generation_id = g.id group by g.id`;
    expect(rows).toHaveLength(ids.length);
    for (const row of rows) {
      expect(['succeeded', 'failed']).toContain(row.status);
      if (row.status === 'succeeded') expect(row.outputs).toBe(row.variants);
      else expect(row.error, row.id as string).toBeTruthy();
    }
    const succeeded = rows.filter((r) => r.status === 'succeeded').length;
    const maxAttempts = Math.max(...rows.map((r) => r.attempts as number));
    console.log(
      `worker-kill: ${KILLS} kills (${killedMidJob} with jobs running), ${succeeded}/${rows.length} succeeded, ` +
        `${rows.length - succeeded} failed with a reason, at most ${maxAttempts} attempts for one generation`,
    );
  }, 400_000);
});
