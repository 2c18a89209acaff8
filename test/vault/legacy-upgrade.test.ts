import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { forgeSnapshot, readRecordJson } from '../support/forge-repository.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

/** Turns a format-2 unencrypted repository into what an older trendgen wrote: format 1, no tags, no key named. */
function makeLegacy(repoDir: string): void {
  const configFile = path.join(repoDir, 'config');
  const { authentication: _, ...config } = JSON.parse(readFileSync(configFile, 'utf8')) as Record<
    string,
    unknown
  >;
  writeFileSync(configFile, JSON.stringify({ ...config, version: 1 }));
  for (const folder of ['snapshots', 'ledger/deletions']) {
    let names: string[] = [];
    try {
      names = readdirSync(path.join(repoDir, folder));
    } catch {
      continue;
    }
    for (const name of names) {
      const file = path.join(repoDir, folder, name);
      const bytes = readFileSync(file);
      writeFileSync(file, bytes.subarray(0, bytes.length - 32));
    }
  }
}

/**
 * A repository an older trendgen wrote has no key: the first backup gives it one, vouching only for what the
 * service's own catalog says it wrote; a record someone slipped in before stays refused.
 */
describe('I7: an older unencrypted repository is upgraded safely on first write', () => {
  let vault: VaultEnv;
  let repoDir: string;
  let oldId: string;
  let slippedId: string;
  beforeAll(async () => {
    vault = await startVaultEnv('legacy-upgrade');
    repoDir = vault.env.BACKUP_DIR!;
    const backup = await runCli(['backup', '--json'], vault.env);
    expect(backup.code, backup.stderr).toBe(0);
    oldId = (JSON.parse(backup.stdout) as { snapshotId: string }).snapshotId;
    makeLegacy(repoDir);
    const real = await readRecordJson(repoDir, `snapshots/${oldId}`);
    slippedId = forgeSnapshot(repoDir, { ...real, host: 'intruder' });
  }, 120_000);
  afterAll(async () => vault?.close());

  it('before the upgrade nothing in it reads as verified', async () => {
    const dir = path.join(vault.dir, 'before');
    const restore = await runCli(['restore', oldId, '--only', 'prompts', '--to-dir', dir], vault.env);
    expect(restore.code).toBe(1);
    expect(restore.stderr).toMatch(/not authenticated by the repository key/);
    // Where no key was ever made, the sentence says how the repository gets one.
    const keyless = { ...vault.env, DATA_DIR: path.join(vault.dir, 'keyless') };
    const listed = await runCli(['restore', oldId, '--only', 'prompts', '--to-dir', `${dir}-k`], keyless);
    expect(listed.code).toBe(1);
    expect(listed.stderr).toMatch(
      /written by an older trendgen, before records were authenticated: run trendgen backup once/,
    );
  }, 120_000);

  it('the next backup names the key, vouches for its own snapshot and not for the slipped-in one', async () => {
    const backup = await runCli(['backup', '--json'], vault.env);
    expect(backup.code, backup.stderr).toBe(0);
    const config = JSON.parse(readFileSync(path.join(repoDir, 'config'), 'utf8'));
    expect(config.version).toBe(2);
    expect(config.authentication).toEqual({
      algorithm: 'hmac-sha256',
      keyId: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    const dir = path.join(vault.dir, 'after');
    const restored = await runCli(['restore', oldId, '--only', 'prompts', '--to-dir', dir], vault.env);
    expect(restored.code, restored.stderr).toBe(0);
    const slipped = await runCli(
      ['restore', slippedId, '--only', 'prompts', '--to-dir', `${dir}-2`],
      vault.env,
    );
    expect(slipped.code).toBe(1);
    expect(slipped.stderr).toMatch(/not authenticated by the repository key/);
  }, 120_000);
});
