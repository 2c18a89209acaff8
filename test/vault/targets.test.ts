import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import type { TestDatabase } from '../support/database.ts';
import { type S3Server, startS3Server } from '../support/s3-server.ts';
import { offsiteEnv, startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

interface Listed {
  snapshots: Array<{ id: string; targets: string[] }>;
}

describe('3-2-1: a local and an S3 target', () => {
  let vault: VaultEnv;
  let db: TestDatabase;
  let s3: S3Server;
  let env: Record<string, string>;
  beforeAll(async () => {
    s3 = await startS3Server({ buckets: ['offsite'] });
    vault = await startVaultEnv('targets', offsiteEnv(s3, 's3://offsite/trendgen', 'offsite password'));
    ({ db, env } = vault);
  }, 60_000);
  afterAll(async () => {
    await vault?.close();
    await s3?.stop();
  });

  it('refuses an offsite target without a password, in one sentence', async () => {
    const refused = await runCli(['backup'], { ...env, BACKUP_PASSWORD: '' });
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toMatch(/^trendgen: BACKUP_S3_URI is set but BACKUP_PASSWORD is not/);
  });

  it('writes both; a dead S3 endpoint spoils nothing local, and the missed snapshots follow when it returns', async () => {
    const first = await runCli(['backup', '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout).targets.map((t: { ok: boolean }) => t.ok)).toEqual([true, true]);

    const down = { ...env, S3_ENDPOINT: 'http://127.0.0.1:9' };
    const second = await runCli(['backup', '--json'], down);
    expect(second.code).toBe(1);
    const outcome = JSON.parse(second.stdout);
    expect(outcome.targets[0]).toMatchObject({ name: 'local', ok: true });
    expect(outcome.targets[1]).toMatchObject({ name: 's3', ok: false });
    expect(outcome.targets[1].error).toMatch(/unreachable/);
    const runs = await db.sql`select status from backup_runs order by id`;
    // The refused run of the first test is in the catalog too: failures are recorded (I10).
    expect(runs.map((r) => r.status)).toEqual(['failed', 'succeeded', 'partial']);

    const third = await runCli(['backup', '--json'], env);
    expect(third.code, third.stderr).toBe(0);
    const listed = JSON.parse((await runCli(['snapshots', '--json'], env)).stdout) as Listed;
    expect(listed.snapshots).toHaveLength(3);
    for (const snapshot of listed.snapshots) expect(snapshot.targets.sort()).toEqual(['local', 's3']);

    const check = await runCli(['check', '--read-data', '--target', 's3', '--json'], env);
    expect(check.code, check.stdout).toBe(0);
  }, 180_000);
});
