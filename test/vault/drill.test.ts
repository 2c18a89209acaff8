import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../src/blobstore/file.ts';
import { ObjectStore } from '../../src/objects/store.ts';
import { EmbeddedRedis } from '../../src/services/redis.ts';
import { fakePng, SAMPLE_PROMPT } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { walkFiles } from '../support/files.ts';
import { tempDir } from '../support/temp.ts';

describe('trendgen drill', () => {
  const temp = tempDir('drill');
  const redis = new EmbeddedRedis({ root: temp.dir, port: 0, appendfsync: 'everysec' });
  let db: TestDatabase;
  let env: Record<string, string>;
  beforeAll(async () => {
    db = await createTestDatabase();
    const running = await redis.start();
    const objectsDir = path.join(temp.dir, 'objects');
    const objects = new ObjectStore(db.sql, new FileBlobStore(objectsDir), path.join(temp.dir, 'spool'));
    for (let i = 0; i < 12; i++)
      await objects.put(Readable.from([fakePng(30_000, Buffer.from(`d${i}`))]), {
        kind: 'example',
        maxBytes: 1e9,
      });
    const promptsDir = path.join(temp.dir, 'prompts');
    mkdirSync(promptsDir, { recursive: true });
    writeFileSync(path.join(promptsDir, 'p.yaml'), SAMPLE_PROMPT('p'));
    env = {
      DATABASE_URL: db.url,
      REDIS_URL: running.url,
      STORAGE_URL: `file://${objectsDir}`,
      PROMPTS_DIR: promptsDir,
      DATA_DIR: path.join(temp.dir, 'data'),
      BACKUP_DIR: path.join(temp.dir, 'backups'),
      LOG_LEVEL: 'error',
    };
    const backup = await runCli(['backup'], env);
    expect(backup.code, backup.stderr).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await redis.stop();
    await db?.drop();
    temp.remove();
  });

  it('passes on a good snapshot, reports the recovery time and records it', async () => {
    const drill = await runCli(['drill', '--json'], env);
    expect(drill.code, drill.stderr + drill.stdout).toBe(0);
    const report = JSON.parse(drill.stdout);
    expect(report.status).toBe('passed');
    expect(report.recoverySeconds).toBeGreaterThan(0);
    expect(report.checks.map((c: { name: string }) => c.name)).toEqual(
      expect.arrayContaining(['postgres', 'redis', 'objects', 'prompt-history']),
    );
    const [row] = await db.sql`select status, recovery_seconds from drill_runs order by id desc limit 1`;
    expect(row).toMatchObject({ status: 'passed' });
    // Nothing scratch is left behind.
    expect(readdirSync(path.join(env.DATA_DIR!, 'tmp')).filter((n) => n.startsWith('drill-'))).toEqual([]);
  }, 120_000);

  it('fails after one blob is corrupted, and names what is broken', async () => {
    const blobs = walkFiles(path.join(env.BACKUP_DIR!, 'data')).filter((f) => statSync(f).size > 20_000);
    const victim = blobs[0]!;
    const bytes = readFileSync(victim);
    bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0xff;
    writeFileSync(victim, bytes);
    const drill = await runCli(['drill', 'latest'], env);
    expect(drill.code).toBe(1);
    expect(drill.stdout).toMatch(/^FAIL snapshot/);
    expect(drill.stdout).toContain(path.basename(victim).slice(0, 12));
    const [row] = await db.sql`select status, reason from drill_runs order by id desc limit 1`;
    expect(row!.status).toBe('failed');
  }, 120_000);
});
