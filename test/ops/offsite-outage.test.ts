import { mkdirSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../src/blobstore/file.ts';
import { loadConfig } from '../../src/config/config.ts';
import { type AlertEvent, currentConditions, evaluateAlerts } from '../../src/ops/alerts.ts';
import { runDoctor } from '../../src/ops/doctor/index.ts';
import { EmbeddedRedis } from '../../src/services/redis.ts';
import { backupJob } from '../../src/vault/scheduled.ts';
import { loadSnapshots, openRepository, resolveTargets } from '../../src/vault/targets.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { type S3Server, startS3Server } from '../support/s3-server.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { tempDir } from '../support/temp.ts';

describe('the offsite target down for three runs', () => {
  const temp = tempDir('outage');
  const redis = new EmbeddedRedis({ root: temp.dir, port: 0, appendfsync: 'everysec' });
  let db: TestDatabase | undefined;
  let s3: S3Server | undefined;
  let proxy: TcpProxy | undefined;
  afterAll(async () => {
    await proxy?.close();
    await redis.stop();
    await s3?.stop();
    await db?.drop();
    temp.remove();
  });

  it('I10: local backups go on, one alert fires, the missed snapshots follow on return with one resolved alert', async () => {
    db = await createTestDatabase();
    s3 = await startS3Server({ buckets: ['offsite'] });
    proxy = await startTcpProxy(Number(new URL(s3.endpoint).port));
    const running = await redis.start();
    mkdirSync(path.join(temp.dir, 'prompts'), { recursive: true });
    const config = loadConfig(
      {
        DATABASE_URL: db.url,
        REDIS_URL: running.url,
        DATA_DIR: path.join(temp.dir, 'data'),
        PROMPTS_DIR: path.join(temp.dir, 'prompts'),
        STORAGE_URL: `file://${path.join(temp.dir, 'objects')}`,
        BACKUP_DIR: path.join(temp.dir, 'backups'),
        BACKUP_S3_URI: 's3://offsite/vault',
        BACKUP_PASSWORD: 'outage password',
        S3_ENDPOINT: `http://127.0.0.1:${proxy.port}`,
        AWS_ACCESS_KEY_ID: s3.settings.accessKeyId!,
        AWS_SECRET_ACCESS_KEY: s3.settings.secretAccessKey!,
        BACKUP_SCHEDULE: '0 * * * *',
        BACKUP_KEEP_LAST: '100',
      },
      { dotEnv: false },
    );
    const job = backupJob({
      config,
      sql: db.sql,
      databaseUrl: db.url,
      redisUrl: running.url,
      objects: new FileBlobStore(path.join(temp.dir, 'objects')),
      logger: pino({ level: 'silent' }),
      clock: { now: () => new Date(), sleepUntil: async () => {} },
    });
    const alerts: AlertEvent[] = [];
    const send = async (event: AlertEvent) => {
      alerts.push(event);
    };
    const runAndAlert = async () => {
      await job.run(new Date());
      await evaluateAlerts(db!.sql, await currentConditions(db!.sql, config), send);
    };

    await runAndAlert();
    expect(alerts).toEqual([]);
    proxy.setDown(true);
    for (let i = 0; i < 3; i++) await runAndAlert();
    const runs = await db.sql`select status from backup_runs order by id`;
    expect(runs.map((r) => r.status)).toEqual(['succeeded', 'partial', 'partial', 'partial']);
    expect(alerts.map((a) => [a.event, a.key])).toEqual([['firing', 'backup-failed:s3']]);
    const doctor = await runDoctor(config);
    const s3Fails = doctor.checks.filter((c) => c.status === 'FAIL' && c.id.includes('s3'));
    expect(s3Fails.map((c) => c.id)).toContain('backup.s3.repository');

    proxy.setDown(false);
    await runAndAlert();
    expect(alerts.map((a) => [a.event, a.key])).toEqual([
      ['firing', 'backup-failed:s3'],
      ['resolved', 'backup-failed:s3'],
    ]);
    const [local, offsite] = await Promise.all(
      resolveTargets(config).map(async (t) =>
        (await loadSnapshots(await openRepository(t, config.backup.password))).map((s) => s.id),
      ),
    );
    expect(local).toHaveLength(5);
    expect(offsite!.sort()).toEqual(local!.sort());
    const [last] = await db.sql`select targets from backup_runs order by id desc limit 1`;
    for (const target of last!.targets as Array<{ snapshots: number; repositoryBytes: number }>) {
      expect(target.snapshots).toBe(5);
      expect(target.repositoryBytes).toBeGreaterThan(0);
    }
  }, 240_000);
});
