import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/connection.ts';
import { savePrompt, syncPromptFile, syncPromptsDir } from '../../src/prompts/index.ts';
import { MAX_BYTES, promptYaml } from '../prompts/helpers.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

/**
 * I8 for prompts: the files are read seconds after the database is dumped, so a snapshot's archive can hold
 * contents its database never saw. The restored folder is written from the restored history instead, and the
 * next scan records nothing (issue 15, item 7).
 */
describe('restored prompts folder = restored prompt history (issue 15, item 7)', () => {
  let vault: VaultEnv;
  let scratch: TestDatabase;
  beforeAll(async () => {
    vault = await startVaultEnv('prompts-history');
    scratch = await createTestDatabase({ migrate: false });
  }, 60_000);
  afterAll(async () => {
    await scratch?.drop();
    await vault?.close();
  });

  it('files the history lacks or contradicts do not come back as new versions after the restore', async () => {
    const { sql } = vault.db;
    const dir = vault.promptsDir;
    const opts = { origin: 'api' as const, maxBytes: MAX_BYTES };
    await savePrompt(sql, dir, 'alpha', promptYaml('alpha', 'Alpha one'), opts);
    await savePrompt(sql, dir, 'alpha', promptYaml('alpha', 'Alpha two'), opts);
    await savePrompt(sql, dir, 'beta', promptYaml('beta', 'Beta'), opts);
    rmSync(path.join(dir, 'beta.yaml'));
    expect((await syncPromptFile(sql, dir, 'beta', { maxBytes: MAX_BYTES })).outcome).toBe('deleted');
    await savePrompt(sql, dir, 'delta', promptYaml('delta', 'Delta'), opts);
    writeFileSync(path.join(dir, 'delta.yaml'), 'name: delta\ntemplate: [not closed\n');
    expect((await syncPromptFile(sql, dir, 'delta', { maxBytes: MAX_BYTES })).outcome).toBe('invalid');
    const invalidDelta = readFileSync(path.join(dir, 'delta.yaml'));
    // What the file archive holds but the database did not see (written after its dump): a newer alpha, a
    // beta file again, and gamma, which the history does not know at all.
    writeFileSync(path.join(dir, 'alpha.yaml'), promptYaml('alpha', 'Alpha three'));
    writeFileSync(path.join(dir, 'beta.yaml'), promptYaml('beta', 'Beta again'));
    writeFileSync(path.join(dir, 'gamma.yaml'), promptYaml('gamma', 'Gamma'));

    const backup = await runCli(['backup', '--json'], vault.env);
    expect(backup.code, backup.stderr).toBe(0);
    const to = path.join(vault.dir, 'restored');
    const restore = await runCli(
      [
        'restore',
        'latest',
        '--only',
        'postgres,prompts',
        '--to-database',
        scratch.url,
        '--to-dir',
        to,
        '--json',
      ],
      vault.env,
    );
    expect(restore.code, restore.stderr).toBe(0);
    const restored = path.join(to, 'prompts');
    expect(readFileSync(path.join(restored, 'alpha.yaml'), 'utf8')).toBe(promptYaml('alpha', 'Alpha two'));
    expect(existsSync(path.join(restored, 'beta.yaml'))).toBe(false);
    expect(readFileSync(path.join(restored, 'delta.yaml')).equals(invalidDelta)).toBe(true);
    expect(readFileSync(path.join(restored, 'gamma.yaml'), 'utf8')).toBe(promptYaml('gamma', 'Gamma'));

    // The next `up` scans the folder against the restored history: nothing the history had changes.
    const restoredSql = openDatabase(scratch.url, { max: 1 });
    try {
      const scan = await syncPromptsDir(restoredSql, restored, { maxBytes: MAX_BYTES });
      expect(scan.changes.map((c) => `${c.name}:${c.outcome}`)).toEqual(['gamma:added']);
      const versions = await restoredSql<{ name: string; version: number }[]>`
        select name, version from prompt_versions order by name, version`;
      expect(versions.map((v) => `${v.name}@${v.version}`)).toEqual([
        'alpha@1',
        'alpha@2',
        'beta@1',
        'delta@1',
        'gamma@1',
      ]);
    } finally {
      await restoredSql.end({ timeout: 5 });
    }
  }, 120_000);
});
