import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakePng, SAMPLE_PROMPT } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import type { TestDatabase } from '../support/database.ts';
import { flipStoredByte, storedBlobs } from '../support/stored-blobs.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';
import { openVaultRepository } from './vault-repository.ts';

describe('trendgen drill', () => {
  let vault: VaultEnv;
  let db: TestDatabase;
  let env: Record<string, string>;
  beforeAll(async () => {
    vault = await startVaultEnv('drill');
    ({ db, env } = vault);
    for (let i = 0; i < 12; i++) {
      await vault.objects.put(Readable.from([fakePng(30_000, Buffer.from(`d${i}`))]), {
        kind: 'example',
        maxBytes: 1e9,
      });
    }
    writeFileSync(path.join(vault.promptsDir, 'p.yaml'), SAMPLE_PROMPT('p'));
    const backup = await runCli(['backup'], env);
    expect(backup.code, backup.stderr).toBe(0);
  }, 120_000);
  afterAll(async () => vault?.close());

  it('passes on a good snapshot, reports the recovery time and records it', async () => {
    const drill = await runCli(['drill', '--json'], env);
    expect(drill.code, drill.stderr + drill.stdout).toBe(0);
    const report = JSON.parse(drill.stdout);
    expect(report.status).toBe('passed');
    expect(report.recoverySeconds).toBeGreaterThan(0);
    expect(report.checks.map((c: { name: string }) => c.name)).toEqual(
      expect.arrayContaining(['postgres', 'redis', 'objects', 'prompt-history', 'amcheck']),
    );
    const [row] = await db.sql`select status, recovery_seconds from drill_runs order by id desc limit 1`;
    expect(row).toMatchObject({ status: 'passed' });
    // Nothing scratch is left behind.
    expect(readdirSync(path.join(env.DATA_DIR!, 'tmp')).filter((n) => n.startsWith('drill-'))).toEqual([]);
  }, 120_000);

  it('fails after one blob is corrupted, and names what is broken', async () => {
    const repo = await openVaultRepository(env);
    const victim = (await storedBlobs(repo, env.BACKUP_DIR!)).find((blob) => blob.length > 20_000)!;
    flipStoredByte(victim, 0.99);
    const drill = await runCli(['drill', 'latest'], env);
    expect(drill.code).toBe(1);
    expect(drill.stdout).toMatch(/^FAIL snapshot/);
    expect(drill.stdout).toContain(victim.id.slice(0, 12));
    const [row] = await db.sql`select status, reason from drill_runs order by id desc limit 1`;
    expect(row!.status).toBe('failed');
  }, 120_000);
});
