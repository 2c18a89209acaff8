import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/index.ts';
import {
  DEFAULT_CHUNKER,
  DEFAULT_SCRYPT,
  InvalidConfigError,
  NotEncryptedError,
  PasswordRequiredError,
  Repository,
  RepositoryExistsError,
  RepositoryNotFoundError,
  UnsupportedFormatError,
  WrongPasswordError,
} from '../../../src/vault/repository/index.ts';
import { tempDir } from '../../support/temp.ts';
import { AUTH_KEY, FAST_KDF, PASSWORD, type TempRepo, tempRepo } from './helpers.ts';

let t: TempRepo;
afterEach(() => t?.remove());

const configOf = async (root: string) => JSON.parse(await readFile(path.join(root, 'config'), 'utf8'));

describe('repository config', () => {
  it('an encrypted config holds version, id, chunker sizes, scrypt parameters and wrapped keys, and no secret', async () => {
    const temp = tempDir('vault-format');
    try {
      const store = new FileBlobStore(temp.dir);
      const repo = await Repository.init(store, { password: PASSWORD });
      const config = await configOf(temp.dir);
      expect(config).toMatchObject({
        version: 3,
        id: repo.id,
        chunker: { algorithm: 'fastcdc', ...DEFAULT_CHUNKER },
        compression: { algorithm: 'zstd', level: 1 },
        encryption: { cipher: 'aes-256-gcm', kdf: { algorithm: 'scrypt', ...DEFAULT_SCRYPT } },
      });
      // The seed would let anyone predict chunk boundaries, so it travels wrapped with the keys.
      expect(config.chunker.seed).toBeUndefined();
      expect(Buffer.from(config.encryption.kdf.salt, 'base64')).toHaveLength(32);
      expect(Buffer.from(config.encryption.keys, 'base64')).toHaveLength(12 + 96 + 16);
      const opened = await Repository.open(store, { password: PASSWORD });
      expect(opened.id).toBe(repo.id);
      expect(opened.chunkerParams).toEqual(repo.chunkerParams);
    } finally {
      temp.remove();
    }
  });

  it('an unencrypted config keeps the chunker seed in the clear', async () => {
    t = await tempRepo();
    const config = await configOf(t.root);
    expect(config.encryption).toBeUndefined();
    expect(config.chunker.seed).toMatch(/^[0-9a-f]{64}$/);
    expect((await Repository.open(t.store, { authKey: AUTH_KEY })).chunkerParams).toEqual(
      t.repo.chunkerParams,
    );
  });

  it('I9: init refuses a location that already holds a config, or blobs without one', async () => {
    t = await tempRepo();
    const error = await Repository.init(t.store, { authKey: AUTH_KEY }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RepositoryExistsError);
    expect((error as Error).message).toContain(t.store.location);
    await t.repo.putBlob('data', Buffer.from('x'));
    await t.store.delete('config');
    await expect(Repository.init(t.store, { authKey: AUTH_KEY })).rejects.toThrow(
      /holds backup data but no config/,
    );
  });

  it('a wrong password is WrongPasswordError with one sentence naming the repository', async () => {
    t = await tempRepo({ encrypted: true });
    const error = await Repository.open(t.store, { password: 'not it' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WrongPasswordError);
    expect((error as Error).message).toBe(
      `The backup password is wrong for the repository at ${t.store.location}: check BACKUP_PASSWORD.`,
    );
  });

  it('an encrypted repository without a password, and an unencrypted one with a password, are refused clearly', async () => {
    t = await tempRepo({ encrypted: true });
    await expect(Repository.open(t.store)).rejects.toBeInstanceOf(PasswordRequiredError);
    await expect(Repository.open(t.store, { password: '' })).rejects.toThrow(
      /is encrypted: set BACKUP_PASSWORD/,
    );
    const plain = await tempRepo();
    try {
      await expect(
        Repository.open(plain.store, { password: PASSWORD, authKey: AUTH_KEY }),
      ).rejects.toBeInstanceOf(NotEncryptedError);
    } finally {
      plain.remove();
    }
  });

  it('a newer format version is UnsupportedFormatError asking to upgrade', async () => {
    t = await tempRepo();
    const config = await configOf(t.root);
    await writeFile(path.join(t.root, 'config'), JSON.stringify({ ...config, version: 4, shape: 'unknown' }));
    const error = await Repository.open(t.store, { authKey: AUTH_KEY }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnsupportedFormatError);
    expect((error as Error).message).toBe(
      `The backup repository at ${t.store.location} was written by a newer trendgen (format 4); upgrade trendgen.`,
    );
  });

  it('a missing or garbled config is a clear error, never a crash', async () => {
    const temp = tempDir('vault-format');
    try {
      const store = new FileBlobStore(temp.dir);
      await expect(Repository.open(store)).rejects.toBeInstanceOf(RepositoryNotFoundError);
      await store.put('config', Buffer.from('{"version": 1, "id": 3'));
      await expect(Repository.open(store)).rejects.toBeInstanceOf(InvalidConfigError);
      await store.put('config', Buffer.from(JSON.stringify({ version: 1, id: 'x' })));
      await expect(Repository.open(store)).rejects.toThrow(/no repository id/);
    } finally {
      temp.remove();
    }
  });

  it('a repository made like another names the same content with the same ids', async () => {
    t = await tempRepo({ encrypted: true });
    const temp = tempDir('vault-format');
    try {
      const twin = await Repository.init(new FileBlobStore(temp.dir), {
        password: 'other',
        kdf: FAST_KDF,
        like: t.repo,
      });
      const data = Buffer.from('one chunking pass, two targets');
      expect(twin.blobId(data)).toBe(t.repo.blobId(data));
      expect(twin.id).not.toBe(t.repo.id);
      expect(twin.chunkerParams).toEqual(t.repo.chunkerParams);
    } finally {
      temp.remove();
    }
  });
});
