import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../support/cli.ts';
import { startVaultEnv, type VaultEnv } from '../../support/vault-env.ts';

describe('trendgen export without --out', () => {
  let env: VaultEnv;
  beforeAll(async () => {
    env = await startVaultEnv('export-default');
    const backup = await runCli(['backup'], env.env);
    expect(backup.code, backup.stderr).toBe(0);
  }, 120_000);
  afterAll(async () => env?.close());

  it('writes into BACKUP_DIR/exports, never into the working directory', async () => {
    const cwd = path.join(env.dir, 'somewhere');
    mkdirSync(cwd);
    const result = await runCli(['export', 'latest'], env.env, { cwd });
    expect(result.code, result.stderr).toBe(0);
    const file = result.stdout.trim();
    expect(path.dirname(file)).toBe(path.join(env.env.BACKUP_DIR!, 'exports'));
    expect(path.basename(file)).toMatch(/^trend_generator_backup_\d{8}_\d{6}\.tar\.gz$/);
    expect(readdirSync(cwd)).toEqual([]);
  }, 120_000);
});
