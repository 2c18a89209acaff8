import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reconcile } from '../../src/generation/reconciler.ts';
import { waitFor, waitForExit } from '../../src/services/process-utils.ts';
import { EmbeddedRedis } from '../../src/services/redis.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import {
  createTrendWithPrompt,
  postGeneration,
  samplePhoto,
  startTestWorker,
  type TestWorker,
} from '../support/generation.ts';
import { tempDir } from '../support/temp.ts';

const TOTAL = Number(process.env.REDIS_WIPE_GENERATIONS ?? 500);

describe('faults: Redis loses everything while generations are queued and running', () => {
  const temp = tempDir('redis-wipe');
  const redis = new EmbeddedRedis({ root: temp.dir, port: 0, appendfsync: 'everysec' });
  let api: TestApi | undefined;
  let worker: TestWorker | undefined;
  let reconciler: NodeJS.Timeout | undefined;
  afterAll(async () => {
    if (reconciler) clearInterval(reconciler);
    await worker?.close();
    await api?.close();
    await redis.stop();
    temp.remove();
  });

  it(`I4: ${TOTAL} accepted generations all succeed exactly once after the wipe`, async () => {
    const started = Date.now();
    const running = await redis.start();
    api = await startTestApi({}, { redisUrl: running.url });
    await createTrendWithPrompt(api);
    worker = startTestWorker(api, { redisUrl: running.url, settings: { concurrency: 4, leaseSeconds: 3 } });
    const photos = await Promise.all(Array.from({ length: 20 }, (_, i) => samplePhoto(i + 1, 48)));
    const ids: string[] = [];
    for (let i = 0; i < TOTAL; i += 20) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(20, TOTAL - i) }, (_, j) =>
          postGeneration(api!, { trend: 'ghibli', user: `u${(i + j) % 37}`, variants: '1' }, photos[j]!),
        ),
      );
      for (const response of batch) {
        expect(response.statusCode).toBe(202);
        ids.push(response.body.id);
      }
    }
    const sql = api.db.sql;
    const [before] = await sql`select count(*) filter (where status = 'succeeded')::int as done,
      count(*) filter (where status = 'running')::int as running from generations`;

    // The wipe: SIGKILL, AOF and RDB deleted, a fresh empty server on the same port.
    const victim = (await redis.findRunning())!;
    process.kill(victim.pid, 'SIGKILL');
    await waitForExit(victim.pid, 10_000);
    for (const entry of readdirSync(redis.dataDir))
      rmSync(path.join(redis.dataDir, entry), { recursive: true, force: true });
    const fresh = await redis.start();
    expect(fresh.port).toBe(running.port);
    const queue = api.queue;
    expect(await queue.count()).toBe(0);

    // The scheduler's reconciler, at a test-friendly interval.
    let repaired = 0;
    reconciler = setInterval(() => {
      reconcile(sql, queue)
        .then((report) => {
          repaired += report.requeued + report.leasesExpired;
        })
        .catch(() => {});
    }, 1000);
    await waitFor(
      `all ${TOTAL} generations to finish`,
      async () => {
        const [row] =
          await sql`select count(*)::int as open from generations where status in ('queued', 'running')`;
        return row!.open === 0 ? true : undefined;
      },
      300_000,
      500,
    );
    const [after] = await sql`select count(*) filter (where status = 'succeeded')::int as succeeded,
      count(*) filter (where status = 'failed')::int as failed from generations`;
    expect(after).toEqual({ succeeded: TOTAL, failed: 0 });
    const outputs =
      await sql`select generation_id, count(*)::int as n from generation_outputs group by generation_id`;
    expect(outputs).toHaveLength(TOTAL);
    expect(outputs.every((row) => row.n === 1)).toBe(true);
    const unreadable = await sql`select o.key from generation_outputs o left join objects b on b.key = o.key
      where b.key is null or b.deleted_at is not null`;
    expect(unreadable).toEqual([]);
    console.log(
      `redis-wipe: ${TOTAL} accepted; at the wipe ${before!.done} done, ${before!.running} running; ` +
        `${repaired} repaired by the reconciler; all succeeded once in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }, 400_000);
});
