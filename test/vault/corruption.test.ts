import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakePng, SAMPLE_PROMPT } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { walkFiles } from '../support/files.ts';
import { flipStoredByte, storedBlobs } from '../support/stored-blobs.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';
import { openVaultRepository } from './vault-repository.ts';

const MARKER = 'Turn {subject} into a hand-painted anime portrait';

describe('the vault against corruption and prying eyes', () => {
  let vault: VaultEnv;
  let env: Record<string, string>;
  beforeAll(async () => {
    vault = await startVaultEnv('corruption', { BACKUP_PASSWORD: 'the right password' });
    env = vault.env;
    for (let i = 0; i < 40; i++) {
      await vault.objects.put(Readable.from([fakePng(20_000 + i * 500, Buffer.from(`c${i}`))]), {
        kind: 'example',
        maxBytes: 1e9,
      });
    }
    for (let i = 0; i < 5; i++)
      writeFileSync(path.join(vault.promptsDir, `p${i}.yaml`), SAMPLE_PROMPT(`p${i}`));
    const backup = await runCli(['backup', '--json'], env);
    expect(backup.code, backup.stderr).toBe(0);
  }, 120_000);
  afterAll(async () => vault?.close());

  it('encryption: no stored file holds a plaintext prompt or an image header', () => {
    const files = walkFiles(env.BACKUP_DIR!);
    // config, a snapshot record, an index file and the pack files that hold every blob.
    expect(files.filter((file) => file.includes('/packs/')).length).toBeGreaterThan(0);
    expect(files.length).toBeGreaterThan(3);
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    for (const file of files) {
      const bytes = readFileSync(file);
      expect(bytes.includes(Buffer.from(MARKER)), file).toBe(false);
      expect(bytes.includes(png), file).toBe(false);
      expect(bytes.includes(Buffer.from('public.objects')), file).toBe(false);
    }
  });

  it('a wrong password is one clear sentence and exit 1', async () => {
    const wrong = await runCli(['snapshots'], { ...env, BACKUP_PASSWORD: 'not the password' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/password is wrong/);
    expect(wrong.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('I7: 20 flipped bytes in 20 blobs are each named by check --read-data, nothing else; restore refuses them by name', async () => {
    const repo = await openVaultRepository(env);
    const blobs = (await storedBlobs(repo, env.BACKUP_DIR!)).filter((blob) => blob.length > 64);
    expect(blobs.length).toBeGreaterThanOrEqual(20);
    const victims = [...blobs].sort(() => Math.random() - 0.5).slice(0, 20);
    for (const blob of victims) flipStoredByte(blob, Math.random());
    const check = await runCli(['check', '--read-data', '--json'], env);
    expect(check.code).toBe(1);
    const report = JSON.parse(check.stdout) as { targets: Array<{ damagedBlobs: Array<{ id: string }> }> };
    const named = new Set(report.targets[0]!.damagedBlobs.map((b) => b.id));
    expect(named).toEqual(new Set(victims.map((blob) => blob.id)));

    const restore = await runCli(
      ['restore', 'latest', '--only', 'objects,prompts', '--to-dir', path.join(vault.dir, 'restored')],
      env,
    );
    expect(restore.code).toBe(1);
    expect(restore.stderr).toMatch(/damaged|corrupt/i);
    // It names what is broken: one of the damaged blobs.
    expect(
      victims.some((blob) => restore.stderr.includes(blob.id)),
      restore.stderr,
    ).toBe(true);
  }, 120_000);
});
