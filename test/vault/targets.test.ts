import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedRedis } from '../../src/services/redis.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { type S3Server, startS3Server } from '../support/s3-server.ts';
import { tempDir } from '../support/temp.ts';

interface Listed {
  snapshots: Array<{ id: string; targets: string[] }>;
}

describe('3-2-1: a local and an S3 target', () => {
  const temp = tempDir('targets');
  const redis = new EmbeddedRedis({ root: temp.dir, port: 0, appendfsync: 'everysec' });
  let db: TestDatabase;
  let s3: S3Server;
  let env: Record<string, string>;
  beforeAll(async () => {
    db = await createTestDatabase();
    s3 = await startS3Server({ buckets: ['offsite'] });
    const running = await redis.start();
    const promptsDir = path.join(temp.dir, 'prompts');
    mkdirSync(promptsDir, { recursive: true });
    env = {
      DATABASE_URL: db.url,
      REDIS_URL: running.url,
      STORAGE_URL: `file://${path.join(temp.dir, 'objects')}`,
      PROMPTS_DIR: promptsDir,
      DATA_DIR: path.join(temp.dir, 'data'),
      BACKUP_DIR: path.join(temp.dir, 'backups'),
      BACKUP_S3_URI: 's3://offsite/trendgen',
      BACKUP_PASSWORD: 'offsite password',
      S3_ENDPOINT: s3.endpoint,
      AWS_ACCESS_KEY_ID: s3.settings.accessKeyId!,
      AWS_SECRET_ACCESS_KEY: s3.settings.secretAccessKey!,
      LOG_LEVEL: 'error',
    };
  }, 60_000);
  afterAll(async () => {
    await redis.stop();
    await s3?.stop();
    await db?.drop();
    temp.remove();
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
