import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FileBlobStore } from '../../src/blobstore/file.ts';
import { loadConfig } from '../../src/config/config.ts';
import { runBackup } from '../../src/vault/backup.ts';
import { restoreFromTargets } from '../../src/vault/restore-request.ts';
import { fakePng } from '../support/api.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

/** Each flush of a file system, with what the restore's prompts folder looked like at that moment. */
const flushes = vi.hoisted(() => [] as Array<{ dir: string; promptsMarked: boolean; promptFiles: string[] }>);
const watched = vi.hoisted(() => ({ toDir: '' }));

vi.mock('../../src/lib/files.ts', async (original) => {
  const files = await original<typeof import('../../src/lib/files.ts')>();
  return {
    ...files,
    syncFileSystem: async (dir: string) => {
      const prompts = path.join(watched.toDir, 'prompts');
      flushes.push({
        dir,
        promptsMarked: existsSync(path.join(watched.toDir, '.prompts.restore-incomplete')),
        promptFiles: existsSync(prompts) ? readdirSync(prompts).sort() : [],
      });
      await files.syncFileSystem(dir);
    },
  };
});

describe('a restore writes objects and prompts without an fsync each and flushes once before its marks go (I2)', () => {
  let vault: VaultEnv;
  let scratch: TestDatabase;
  beforeAll(async () => {
    vault = await startVaultEnv('restore-flush');
    scratch = await createTestDatabase({ migrate: false });
  }, 60_000);
  afterAll(async () => {
    await scratch?.drop();
    await vault?.close();
  });

  it('the prompts folder is in place and still marked when its file system is flushed, and unmarked after', async () => {
    writeFileSync(path.join(vault.promptsDir, 'alpha.yaml'), 'name: alpha\ntemplate: Alpha {{subject}}\n');
    writeFileSync(path.join(vault.promptsDir, 'beta.yaml'), 'name: beta\ntemplate: Beta {{subject}}\n');
    await vault.objects.put(Readable.from([fakePng(50_000)]), { kind: 'example', maxBytes: 1e7 });
    const config = loadConfig(vault.env, { dotEnv: false });
    await runBackup({
      config,
      databaseUrl: vault.db.url,
      redisUrl: vault.redisUrl,
      objects: new FileBlobStore(vault.objectsDir),
      sql: vault.db.sql,
    });

    watched.toDir = path.join(vault.dir, 'restored');
    flushes.length = 0;
    const outcome = await restoreFromTargets(config, {
      ref: 'latest',
      only: ['postgres', 'prompts', 'objects'],
      toDatabase: scratch.url,
      toDir: watched.toDir,
    });
    expect(outcome.kind).toBe('vault');
    const promptsFlush = flushes.find((flush) => flush.dir === watched.toDir);
    expect(promptsFlush, JSON.stringify(flushes)).toEqual({
      dir: watched.toDir,
      promptsMarked: true,
      promptFiles: ['alpha.yaml', 'beta.yaml'],
    });
    expect(flushes.some((flush) => flush.dir === path.join(watched.toDir, 'objects'))).toBe(true);
    expect(existsSync(path.join(watched.toDir, '.prompts.restore-incomplete'))).toBe(false);
  });
});
