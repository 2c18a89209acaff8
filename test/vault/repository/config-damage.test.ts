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
import { PASSWORD, type TempRepo, tempRepo } from './helpers.ts';

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
    expect(await (await Repository.open(plain.store)).listSnapshots()).toHaveLength(1);
    await expect(Repository.open(plain.store, { password: PASSWORD })).rejects.toBeInstanceOf(
      NotEncryptedError,
    );
  });
});
