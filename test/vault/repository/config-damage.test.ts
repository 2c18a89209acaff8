import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  EncryptionConfigLostError,
  InvalidConfigError,
  NotEncryptedError,
  Repository,
} from '../../../src/vault/repository/index.ts';
import { runCli } from '../../support/cli.ts';
import { startVaultEnv } from '../../support/vault-env.ts';
import { AUTH_KEY, PASSWORD, type TempRepo, tempRepo } from './helpers.ts';

let t: TempRepo;
let plain: TempRepo | undefined;
afterEach(() => {
  t?.remove();
  plain?.remove();
});

const configFile = (root: string) => path.join(root, 'config');

/** A repository with a snapshot of a small folder in it. */
async function withSnapshot(encrypted: boolean): Promise<TempRepo> {
  const repo = await tempRepo({ encrypted });
  const source = path.join(repo.work, 'source');
  await mkdir(source, { recursive: true });
  await writeFile(path.join(source, 'a.txt'), 'some text to keep '.repeat(500));
  await writeFile(path.join(source, 'b.bin'), randomBytes(50_000));
  const { treeId } = await repo.repo.storeDirectory(source);
  await repo.repo.saveSnapshot({
    time: new Date().toISOString(),
    host: 'h',
    tags: [],
    trees: { files: treeId },
  });
  return repo;
}

async function filesIn(root: string): Promise<number> {
  return (await readdir(root, { recursive: true })).length;
}

describe('a repository whose config lost its encryption section (issue 15, item 6)', () => {
  it('is refused, with or without a password, by a sentence that says how to recover the config', async () => {
    t = await withSnapshot(true);
    const original = JSON.parse(await readFile(configFile(t.root), 'utf8'));
    const { encryption: _removed, ...stripped } = original;
    const before = await filesIn(t.root);
    // As the tamperer left it (no seed: the encrypted config keeps it wrapped), and with a seed added so
    // that it reads as a complete plaintext config.
    for (const config of [
      stripped,
      { ...stripped, chunker: { ...stripped.chunker, seed: 'a'.repeat(64) } },
    ]) {
      await writeFile(configFile(t.root), JSON.stringify(config));
      for (const password of [PASSWORD, undefined]) {
        const error = await Repository.open(t.store, password ? { password } : {}).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(EncryptionConfigLostError);
        const message = (error as Error).message;
        expect(message).toMatch(/config .* is damaged/);
        expect(message).toMatch(/copy the file config back from another backup target/);
        expect(message).not.toMatch(/unset BACKUP_PASSWORD/);
      }
    }
    // Nothing was written, and the real config brings everything back.
    expect(await filesIn(t.root)).toBe(before);
    await writeFile(configFile(t.root), JSON.stringify(original));
    const reopened = await Repository.open(t.store, { password: PASSWORD });
    expect(await reopened.listSnapshots()).toHaveLength(1);
  });

  it('a damaged encryption section is named as damaged, with the same way back', async () => {
    t = await withSnapshot(true);
    const original = JSON.parse(await readFile(configFile(t.root), 'utf8'));
    await writeFile(configFile(t.root), JSON.stringify({ ...original, encryption: { cipher: 'rot13' } }));
    const error = await Repository.open(t.store, { password: PASSWORD }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EncryptionConfigLostError);
    expect((error as Error).message).toMatch(/copy the file config back/);
    // Without encrypted data to tell, it is an unreadable config, with the same advice.
    plain = await tempRepo();
    await writeFile(configFile(plain.root), JSON.stringify({ ...original, encryption: { cipher: 'rot13' } }));
    const unreadable = await Repository.open(plain.store, { password: PASSWORD }).catch((e: unknown) => e);
    expect(unreadable).toBeInstanceOf(InvalidConfigError);
    expect((unreadable as Error).message).toMatch(/unreadable .*copy the file config back/);
  });

  it('an unencrypted repository still opens, and a password for it is still refused as before', async () => {
    plain = await withSnapshot(false);
    expect(await (await Repository.open(plain.store, { authKey: AUTH_KEY })).listSnapshots()).toHaveLength(1);
    await expect(
      Repository.open(plain.store, { password: PASSWORD, authKey: AUTH_KEY }),
    ).rejects.toBeInstanceOf(NotEncryptedError);
  });
});

describe('trendgen backup into a repository whose config lost its encryption section (issue 15, item 6)', () => {
  it('refuses with the damaged-config sentence, with or without BACKUP_PASSWORD, and writes nothing', async () => {
    const vault = await startVaultEnv('config-damage', { BACKUP_PASSWORD: 'the real password' });
    try {
      await writeFile(path.join(vault.promptsDir, 'one.yaml'), 'name: one\ntemplate: "a {subject}"\n');
      const first = await runCli(['backup'], vault.env);
      expect(first.code, first.stderr).toBe(0);
      const root = vault.env.BACKUP_DIR!;
      const config = JSON.parse(await readFile(configFile(root), 'utf8'));
      const { encryption: _removed, ...stripped } = config;
      await writeFile(
        configFile(root),
        JSON.stringify({ ...stripped, chunker: { ...stripped.chunker, seed: 'b'.repeat(64) } }),
      );
      const before = await filesIn(root);
      await writeFile(path.join(vault.promptsDir, 'two.yaml'), 'name: two\ntemplate: "b {subject}"\n');
      for (const password of ['the real password', '']) {
        const backup = await runCli(['backup'], { ...vault.env, BACKUP_PASSWORD: password });
        expect(backup.code).toBe(1);
        expect(backup.stderr).toMatch(/config .* is damaged/);
        expect(backup.stderr).toMatch(/copy the file config back/);
        expect(backup.stderr).not.toMatch(/unset BACKUP_PASSWORD/);
      }
      expect(await filesIn(root)).toBe(before);
    } finally {
      await vault.close();
    }
  }, 120_000);
});
