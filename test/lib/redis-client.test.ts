import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, waitFor } from '../../src/lib/process.ts';
import { createRedisClient, resolveRedisAddress } from '../../src/lib/redis-client.ts';
import { dumpRedis } from '../../src/vault/sources/redis.ts';
import { withRdb } from '../../src/vault/sources/redis-tools.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import {
  generationLoad,
  percentile,
  seedLoadTrend,
  successesInLogs,
  waitForEnds,
} from '../support/generation-load.ts';
import { startUp, type UpProcess } from '../support/processes.ts';
import { type SentinelSet, startSentinelSet } from '../support/redis-servers.ts';
import { tempDir } from '../support/temp.ts';

const PROBE_KEY = 'trendgen-test:probe';

/**
 * Writes through the application's client, one after another. `firstAfter(t)`: when the first write *sent* after
 * `t` was acknowledged (a reply the killed master sent before dying may still be read after it died).
 */
function writeProbe(url: string) {
  const client = createRedisClient(url, { maxRetriesPerRequest: null });
  client.on('error', () => {});
  const writes: Array<{ sentAt: number; ackedAt: number }> = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const sentAt = Date.now();
      await client.incr(PROBE_KEY);
      writes.push({ sentAt, ackedAt: Date.now() });
      await sleep(10);
    }
  })();
  return {
    firstAfter: (at: number) => writes.find((w) => w.sentAt > at)?.ackedAt,
    stop: async () => {
      running = false;
      await loop;
      client.disconnect();
    },
  };
}

/**
 * Level 3's Redis: a master, two replicas and three Sentinels, every one a real redis-server with AOF on, and the
 * whole service (`trendgen up`: API, worker, scheduler with its reconciler) given only the Sentinels. Under a
 * stream of generations the master is SIGKILLed three times; each time the Sentinels promote a replica and the
 * killed server comes back as a replica. Replication is asynchronous, so a job acknowledged just before a kill
 * may be missing on the promoted replica: PostgreSQL holds the generation (I4) and the reconciler queues it
 * again. What must hold: every accepted generation ends, succeeded, exactly once.
 */
describe('Redis through Sentinel, failover under load', { timeout: 180_000 }, () => {
  const temp = tempDir('sentinel');
  const adminToken = 'sentinel-admin-token-0123456789';
  const clientToken = 'sentinel-client-token-0123456789';
  let db: TestDatabase;
  let set: SentinelSet;
  let up: UpProcess | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    set = await startSentinelSet(path.join(temp.dir, 'redis'), {
      password: 'masterpass0123',
      sentinelPassword: 'sentinelpass0123',
    });
  });

  afterAll(async () => {
    await up?.stop().catch(() => {});
    await set?.stop();
    await db?.drop();
    temp.remove();
  });

  it('promotes a replica three times while every generation ends exactly once', async () => {
    up = await startUp({
      ...set.env,
      DATABASE_URL: db.url,
      DATA_DIR: path.join(temp.dir, 'data'),
      PROMPTS_DIR: path.join(temp.dir, 'prompts'),
      BACKUP_DIR: path.join(temp.dir, 'backups'),
      ADMIN_TOKEN: adminToken,
      API_TOKEN: clientToken,
      BACKUP_CONTINUOUS: 'off',
      OBJECT_SCRUB_RATE: 'off',
      RECONCILE_INTERVAL_SECONDS: '1',
      GENERATION_LEASE_SECONDS: '5',
      LOG_LEVEL: 'info',
    });
    const running = up;
    await seedLoadTrend(running.baseUrl, { authorization: `Bearer ${adminToken}` });
    const probe = writeProbe(set.url);
    const load = generationLoad({
      baseUrls: [running.baseUrl],
      client: { authorization: `Bearer ${clientToken}` },
      clients: 2,
      pauseMs: 300,
    });
    const servers = [set.master, ...set.replicas];
    const unavailableMs: number[] = [];
    const failoverMs: number[] = [];
    try {
      await set.waitHealthy();
      await sleep(1000);
      for (let round = 0; round < 3; round++) {
        const before = await set.masterPort();
        const victim = servers.find((server) => server.port === before)!;
        await victim.kill();
        const killedAt = Date.now();
        const promoted = await waitFor(
          'the Sentinels to name another master',
          async () => {
            const now = await set.masterPort().catch(() => before);
            return now !== before ? Date.now() : undefined;
          },
          30_000,
          50,
        );
        failoverMs.push(promoted - killedAt);
        const back = await waitFor(
          'a write acknowledged after the kill',
          () => probe.firstAfter(killedAt),
          30_000,
          20,
        );
        unavailableMs.push(back - killedAt);
        // The killed server comes back with its AOF, as a replica of the master the Sentinels name (as a
        // StatefulSet's start script does), and is synced before the next kill.
        await victim.start(await set.masterPort());
        if (round === 2) break;
        await set.waitHealthy();
        // Load between failovers, and past the Sentinels' pause after one (twice failover-timeout).
        await sleep(Math.max(0, promoted + 5000 - Date.now()));
      }
      await sleep(1000);
    } finally {
      await load.stop();
      await probe.stop();
    }
    const ids = load.accepted.map((a) => a.id);
    expect(ids.length, load.refused.slice(0, 3).join('\n')).toBeGreaterThan(20);
    const ends = await waitForEnds(db.sql, ids, 60_000);
    const notSucceeded = ends.filter((end) => end.status !== 'succeeded');
    expect(notSucceeded, 'generations that did not succeed').toEqual([]);
    expect(ends.filter((end) => end.outputs !== end.variants)).toEqual([]);
    // Finished once each: one worker's "generation succeeded" per generation, never two.
    const successes = successesInLogs([running.output()]);
    const twice = ids.filter((id) => (successes.get(id) ?? 0) > 1);
    const unlogged = ids.filter((id) => !successes.has(id));
    expect(twice, 'generations finished twice').toEqual([]);
    expect(unlogged, 'generations that succeeded without a worker saying so').toEqual([]);
    // Failovers make every process log connection errors: none carries a password.
    expect(running.output()).not.toContain('masterpass0123');
    expect(running.output()).not.toContain('sentinelpass0123');
    const requeued = [...running.output().matchAll(/"requeued":(\d+)/g)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
    const latencies = load.accepted.map((a) => a.ackedAt - a.sentAt);
    console.log(
      `redis failover: ${ids.length} generations accepted (${load.refused.length} refused), all succeeded once; ` +
        `${requeued} re-queued by the reconciler (jobs lost, or not yet added when it looked); Sentinels named a new master after ${failoverMs.join(', ')} ms; ` +
        `writes unavailable ${unavailableMs.join(', ')} ms (p50 ${percentile(unavailableMs, 50)} ms, max ${Math.max(...unavailableMs)} ms); ` +
        `POST /generations p50 ${percentile(latencies, 50)} ms, max ${Math.max(...latencies)} ms`,
    );
    expect(Math.max(...unavailableMs)).toBeLessThan(15_000);
    // A request that arrived during a failover waited for the new master; none was refused.
    expect(load.refused).toEqual([]);
    // A backup's Redis part after the failovers: an RDB that redis-cli took from the master the Sentinels name now.
    const master = await set.masterPort();
    expect(await resolveRedisAddress(set.url)).toEqual({ host: '127.0.0.1', port: master });
    const facts = await dumpRedis(set.url, path.join(temp.dir, 'redis-dump'));
    expect(facts.method).toBe('rdb');
    const inBackup = await withRdb(path.join(temp.dir, 'redis-dump', 'dump.rdb'), (c) => c.get(PROBE_KEY));
    const client = createRedisClient(set.url);
    expect(inBackup).toBe(await client.get(PROBE_KEY));
    client.disconnect();
    const ready = await fetch(`${running.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
  });
});
