import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_PROMPT } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

/**
 * A backup stores only what its restore accepts: a symlink leading out of the prompts folder once made every
 * later backup unrestorable (backup and check said OK; restore refused the entry and restored no prompts).
 */
describe('I7: a backup holds only what its restore accepts', () => {
  let vault: VaultEnv;
  let snapshotId: string;
  beforeAll(async () => {
    vault = await startVaultEnv('backup-skips');
    writeFileSync(path.join(vault.promptsDir, 'kept.yaml'), SAMPLE_PROMPT('kept'));
    symlinkSync('kept.yaml', path.join(vault.promptsDir, 'alias.yaml'));
    symlinkSync('/etc/hostname', path.join(vault.promptsDir, 'outside.yaml'));
    symlinkSync('../../..', path.join(vault.promptsDir, 'up'));
  }, 60_000);
  afterAll(async () => vault?.close());

  it('skips symlinks leading outside, says so, and the snapshot restores', async () => {
    const backup = await runCli(['backup', '--json'], vault.env);
    expect(backup.code, backup.stderr).toBe(0);
    const result = JSON.parse(backup.stdout) as {
      snapshotId: string;
      skipped: Array<{ source: string; path: string; reason: string }>;
      stats: { prompts: { skipped: number } };
    };
    snapshotId = result.snapshotId;
    expect(result.skipped.map((s) => `${s.source}/${s.path}`).sort()).toEqual([
      'prompts/outside.yaml',
      'prompts/up',
    ]);
    expect(result.skipped[0]!.reason).toMatch(/outside the folder/);
    expect(result.stats.prompts.skipped).toBe(2);
    const plain = await runCli(['backup'], vault.env);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).toMatch(/skipped prompts\/outside\.yaml: a symlink to "\/etc\/hostname"/);

    const dir = path.join(vault.dir, 'restored');
    const restore = await runCli(['restore', snapshotId, '--only', 'prompts', '--to-dir', dir], vault.env);
    expect(restore.code, restore.stderr).toBe(0);
    expect(readFileSync(path.join(dir, 'prompts', 'kept.yaml'), 'utf8')).toBe(SAMPLE_PROMPT('kept'));
    expect(readFileSync(path.join(dir, 'prompts', 'alias.yaml'), 'utf8')).toBe(SAMPLE_PROMPT('kept'));
    expect(existsSync(path.join(dir, 'prompts', 'outside.yaml'))).toBe(false);
  }, 120_000);

  it('the drill proves it: every prompt file the snapshot counted is restored', async () => {
    const drill = await runCli(['drill', snapshotId, '--json'], vault.env);
    expect(drill.code, drill.stdout + drill.stderr).toBe(0);
    const report = JSON.parse(drill.stdout) as {
      checks: Array<{ name: string; ok: boolean; detail: string }>;
    };
    expect(report.checks.find((c) => c.name === 'prompt-files')).toMatchObject({
      ok: true,
      detail: expect.stringMatching(/^1 prompt file/),
    });
  }, 180_000);
});
