import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { type AlertEvent, currentConditions, evaluateAlerts } from '../../src/ops/alerts.ts';
import { runDoctor } from '../../src/ops/doctor/index.ts';
import { backupJob } from '../../src/vault/scheduled.ts';
import { loadSnapshots, openRepository, resolveTargets } from '../../src/vault/targets.ts';
import { type S3Server, startS3Server } from '../support/s3-server.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';
import { offsiteEnv, startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

describe('the offsite target down for three runs', () => {
  let vault: VaultEnv | undefined;
  let s3: S3Server | undefined;
  let proxyRef: { close(): Promise<void> } | undefined;
  afterAll(async () => {
    await proxyRef?.close();
    await vault?.close();
    await s3?.stop();
  });

  it('I10: local backups go on, one alert fires, the missed snapshots follow on return with one resolved alert', async () => {
    s3 = await startS3Server({ buckets: ['offsite'] });
    const proxy = await startTcpProxy(Number(new URL(s3.endpoint).port));
    proxyRef = proxy;
    vault = await startVaultEnv('outage', {
      ...offsiteEnv(s3, 's3://offsite/vault', 'outage password'),
      S3_ENDPOINT: `http://127.0.0.1:${proxy.port}`,
      BACKUP_SCHEDULE: '0 * * * *',
      BACKUP_KEEP_LAST: '100',
    });
    const { db } = vault;
    const config = loadConfig(vault.env, { dotEnv: false });
    const job = backupJob({
      config,
      sql: db.sql,
      databaseUrl: db.url,
      redisUrl: vault.redisUrl,
      objects: vault.objects.blobs,
      logger: pino({ level: 'silent' }),
      clock: { now: () => new Date(), sleepUntil: async () => {} },
    });
    const alerts: AlertEvent[] = [];
    const send = async (event: AlertEvent) => {
      alerts.push(event);
    };
    const runAndAlert = async () => {
      await job.run(new Date());
      await evaluateAlerts(db.sql, await currentConditions(db.sql, config), send);
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
        (await loadSnapshots(await openRepository(t, config))).map((s) => s.id),
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
