import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { type Clock, runSchedule } from '../../src/lib/scheduler.ts';
import { backupJob } from '../../src/vault/scheduled.ts';
import { loadSnapshots, openRepository, resolveTargets } from '../../src/vault/targets.ts';
import { type S3Server, startS3Server } from '../support/s3-server.ts';
import { offsiteEnv, startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

/** Simulated time: sleeping jumps to the slot once every job in flight has finished. */
class FakeClock implements Clock {
  private current: Date;
  inFlight: Promise<unknown> = Promise.resolve();
  constructor(start: Date) {
    this.current = start;
  }
  now() {
    return new Date(this.current);
  }
  async sleepUntil(until: Date) {
    await this.inFlight;
    this.current = new Date(Math.max(until.getTime(), this.current.getTime()));
  }
}

describe('scheduled backups', () => {
  let vault: VaultEnv | undefined;
  let s3: S3Server | undefined;
  afterAll(async () => {
    await vault?.close();
    await s3?.stop();
  });

  it('a one-minute schedule for ten simulated minutes: a snapshot a minute on both targets, retention applied', async () => {
    s3 = await startS3Server({ buckets: ['offsite'] });
    vault = await startVaultEnv('schedule', {
      ...offsiteEnv(s3, 's3://offsite/vault', 'scheduled password'),
      BACKUP_SCHEDULE: '* * * * *',
      BACKUP_KEEP_LAST: '8',
      BACKUP_KEEP_HOURLY: '0',
      BACKUP_KEEP_DAILY: '0',
      BACKUP_KEEP_WEEKLY: '0',
      BACKUP_KEEP_MONTHLY: '0',
    });
    const { db } = vault;
    const config = loadConfig(vault.env, { dotEnv: false });
    const clock = new FakeClock(new Date('2026-06-01T12:00:30Z'));
    const stop = new AbortController();
    const job = backupJob({
      config,
      sql: db.sql,
      databaseUrl: db.url,
      redisUrl: vault.redisUrl,
      objects: vault.objects.blobs,
      logger: pino({ level: 'silent' }),
      clock,
    });
    const slots: string[] = [];
    const tracked = {
      ...job,
      run: (slot: Date) => {
        slots.push(slot.toISOString());
        if (slots.length >= 10) stop.abort();
        const run = job.run(slot);
        clock.inFlight = run.catch(() => {});
        return run;
      },
    };
    const errors: unknown[] = [];
    await runSchedule([tracked], clock, stop.signal, { onError: (_job, error) => errors.push(error) });
    expect(errors).toEqual([]);
    expect(slots).toHaveLength(10);
    expect(slots[0]).toBe('2026-06-01T12:01:00.000Z');
    expect(slots[9]).toBe('2026-06-01T12:10:00.000Z');
    const runs = await db.sql`select status, targets from backup_runs order by id`;
    expect(runs.filter((r) => r.status === 'succeeded').length).toBeGreaterThanOrEqual(9);
    for (const target of resolveTargets(config)) {
      const snapshots = await loadSnapshots(await openRepository(target, config));
      // Retention as configured: keep-last 8 of the 10 taken.
      expect(snapshots.map((s) => s.time)).toEqual(slots.slice(2).reverse());
    }
  }, 300_000);
});
