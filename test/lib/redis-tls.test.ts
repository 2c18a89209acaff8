import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { checkRedisSetup } from '../../src/lib/redis-check.ts';
import { createRedisClient } from '../../src/lib/redis-client.ts';
import { dumpRedis } from '../../src/vault/sources/redis.ts';
import { withRdb } from '../../src/vault/sources/redis-tools.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { generationLoad, seedLoadTrend, waitForEnds } from '../support/generation-load.ts';
import { startUp, type UpProcess } from '../support/processes.ts';
import {
  makeCertificates,
  type RedisProcess,
  startTlsRedis,
  startTlsSentinel,
  type TlsFiles,
} from '../support/redis-servers.ts';
import { tempDir } from '../support/temp.ts';

const PASSWORD = 'tlspass0123456';

/**
 * Level 2's Redis: a managed service that speaks TLS only. A real redis-server with `--port 0` and a TLS port,
 * on a CA and a certificate for 127.0.0.1 and localhost made here with openssl. The service, a backup and a
 * restore run against it with REDIS_TLS_CA; a wrong CA or host name ends start-up with one sentence.
 */
describe('Redis over TLS only, with a CA of our own', { timeout: 180_000 }, () => {
  const temp = tempDir('redis-tls');
  let tls: TlsFiles;
  let redis: RedisProcess;
  let db: TestDatabase;
  let up: UpProcess | undefined;
  const url = (host = '127.0.0.1') => `rediss://:${PASSWORD}@${host}:${redis.port}/0`;
  /** The application's own connection string for these settings. */
  const appUrl = (env: Record<string, string>) => loadConfig(env, { dotEnv: false }).redisUrl!;

  beforeAll(async () => {
    tls = makeCertificates(path.join(temp.dir, 'certs'));
    // 127.0.0.2 reaches the same server under a name its certificate does not carry.
    [redis, db] = await Promise.all([
      startTlsRedis(path.join(temp.dir, 'redis'), tls, PASSWORD, '127.0.0.1 127.0.0.2'),
      createTestDatabase(),
    ]);
  });

  afterAll(async () => {
    await up?.stop().catch(() => {});
    await redis?.kill();
    await db?.drop();
    temp.remove();
  });

  it('verifies the certificate against REDIS_TLS_CA and the host name against the certificate', async () => {
    for (const host of ['127.0.0.1', 'localhost']) {
      const good = appUrl({ REDIS_URL: url(host), REDIS_TLS_CA: tls.ca });
      await checkRedisSetup(good);
      const client = createRedisClient(good, { maxRetriesPerRequest: 1 });
      expect(await client.set('trendgen-test:tls', host)).toBe('OK');
      expect(await client.get('trendgen-test:tls')).toBe(host);
      client.disconnect();
    }
    await expect(checkRedisSetup(appUrl({ REDIS_URL: url(), REDIS_TLS_CA: tls.otherCa }))).rejects.toThrow(
      `Redis at 127.0.0.1:${redis.port} presented a TLS certificate that the CA in REDIS_TLS_CA (${tls.otherCa}) did not sign (self-signed certificate in certificate chain): set REDIS_TLS_CA to the PEM file of the CA that signed the server's certificate.`,
    );
    // Without REDIS_TLS_CA the system's CAs decide, and none of them signed this certificate.
    await expect(checkRedisSetup(appUrl({ REDIS_URL: url() }))).rejects.toThrow(
      /the system CAs \(REDIS_TLS_CA is unset\) did not sign/,
    );
    await expect(
      checkRedisSetup(appUrl({ REDIS_URL: url('127.0.0.2'), REDIS_TLS_CA: tls.ca })),
    ).rejects.toThrow(
      `Redis at 127.0.0.2:${redis.port} presented a TLS certificate for another host name (Hostname/IP does not match certificate's altnames: IP: 127.0.0.2 is not in the cert's list: 127.0.0.1): write in REDIS_URL a host name the certificate names, or give the server a certificate for the name used.`,
    );
  });

  it('finds the master through a Sentinel that speaks TLS, and takes the backup RDB from it', async () => {
    const sentinel = await startTlsSentinel(path.join(temp.dir, 'sentinel'), tls, redis.port, PASSWORD);
    try {
      const settings = {
        REDIS_URL: `rediss://:${PASSWORD}@/0`,
        REDIS_SENTINELS: `127.0.0.1:${sentinel.port}`,
      };
      const good = appUrl({ ...settings, REDIS_TLS_CA: tls.ca });
      await checkRedisSetup(good);
      const client = createRedisClient(good, { maxRetriesPerRequest: 1 });
      expect(await client.set('trendgen-test:through-sentinel', 'yes')).toBe('OK');
      client.disconnect();
      const facts = await dumpRedis(good, path.join(temp.dir, 'sentinel-dump'));
      expect(facts.method).toBe('rdb');
      const inBackup = await withRdb(path.join(temp.dir, 'sentinel-dump', 'dump.rdb'), (c) =>
        c.get('trendgen-test:through-sentinel'),
      );
      expect(inBackup).toBe('yes');
      await expect(checkRedisSetup(appUrl({ ...settings, REDIS_TLS_CA: tls.otherCa }))).rejects.toThrow(
        `the Sentinels 127.0.0.1:${sentinel.port} presented a TLS certificate that the CA in REDIS_TLS_CA (${tls.otherCa}) did not sign`,
      );
    } finally {
      await sentinel.kill();
    }
  });

  it('refuses to start with a wrong CA: one sentence, exit status 1', async () => {
    const started = Date.now();
    const result = await runCli(['up'], {
      REDIS_URL: url(),
      REDIS_TLS_CA: tls.otherCa,
      DATABASE_URL: db.url,
      DATA_DIR: path.join(temp.dir, 'refused'),
      PROMPTS_DIR: path.join(temp.dir, 'refused-prompts'),
      BACKUP_CONTINUOUS: 'off',
    });
    expect(result.code).toBe(1);
    // The supervisor logs that it stops; then the reason, in one sentence.
    expect(result.stderr.trim().split('\n').at(-1)).toBe(
      `trendgen: Redis at 127.0.0.1:${redis.port} presented a TLS certificate that the CA in REDIS_TLS_CA (${tls.otherCa}) did not sign (self-signed certificate in certificate chain): set REDIS_TLS_CA to the PEM file of the CA that signed the server's certificate.`,
    );
    expect(result.stderr).not.toContain(PASSWORD);
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('runs the service, a backup and a restore of Redis against the TLS-only server', async () => {
    const env = {
      REDIS_URL: url(),
      REDIS_TLS_CA: tls.ca,
      DATABASE_URL: db.url,
      DATA_DIR: path.join(temp.dir, 'data'),
      PROMPTS_DIR: path.join(temp.dir, 'prompts'),
      BACKUP_DIR: path.join(temp.dir, 'backups'),
      ADMIN_TOKEN: 'tls-admin-token-0123456789',
      API_TOKEN: 'tls-client-token-0123456789',
      BACKUP_CONTINUOUS: 'off',
      OBJECT_SCRUB_RATE: 'off',
    };
    up = await startUp(env);
    const running = up;
    await seedLoadTrend(running.baseUrl, { authorization: `Bearer ${env.ADMIN_TOKEN}` });
    const load = generationLoad({
      baseUrls: [running.baseUrl],
      client: { authorization: `Bearer ${env.API_TOKEN}` },
      clients: 1,
      count: 3,
    });
    await load.done;
    expect(load.refused).toEqual([]);
    const ends = await waitForEnds(
      db.sql,
      load.accepted.map((a) => a.id),
      30_000,
    );
    expect(ends.map((end) => end.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);

    const client = createRedisClient(appUrl(env), { maxRetriesPerRequest: 1 });
    await client.set('trendgen-test:kept', 'before the backup');
    // redis-cli takes the RDB over TLS, verified against the same CA.
    const backup = await runCli(['backup', '--json'], env);
    expect(backup.code, backup.stderr).toBe(0);
    const facts = JSON.parse(backup.stdout).facts.redis;
    expect(facts.method).toBe('rdb');
    expect(facts.keys).toBeGreaterThan(0);

    await running.stop();
    expect(running.output() + backup.stderr).not.toContain(PASSWORD);
    await client.del('trendgen-test:kept');
    const restore = await runCli(
      ['restore', 'latest', '--only', 'redis', '--in-place', '--yes', '--json'],
      env,
    );
    expect(restore.code, restore.stderr).toBe(0);
    expect(await client.get('trendgen-test:kept')).toBe('before the backup');
    expect(await client.dbsize()).toBe(facts.keys);
    client.disconnect();
  });
});
