import { existsSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { databaseMarked } from '../../src/vault/restore-markers.ts';
import { fakePng } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/database.ts';
import { flipStoredByte, storedBlob } from '../support/stored-blobs.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';
import { openVaultRepository } from './vault-repository.ts';

// Objects and the database restore side by side; the database stays marked until every object is written.
// A restore that stopped on an object keeps I2 for whatever is accepted of it: no served row refers to an
// object that never arrived.
describe('--accept-partial after objects and the database restored side by side', () => {
  let vault: VaultEnv | undefined;
  afterAll(async () => vault?.close());

  it('I2: rows whose object never arrived, or arrived cut short, are marked purged before the marks go; the others are kept', async () => {
    vault = await startVaultEnv('accept-partial-objects');
    const keptBytes = fakePng(20_000, Buffer.from('kept'));
    const lostBytes = fakePng(21_000, Buffer.from('lost'));
    const kept = await vault.objects.put(Readable.from([keptBytes]), { kind: 'example', maxBytes: 1e9 });
    const lost = await vault.objects.put(Readable.from([lostBytes]), { kind: 'example', maxBytes: 1e9 });
    const cutBytes = fakePng(22_000, Buffer.from('cut'));
    const cut = await vault.objects.put(Readable.from([cutBytes]), { kind: 'example', maxBytes: 1e9 });
    const backup = await runCli(['backup', '--json'], vault.env);
    expect(backup.code, backup.stderr).toBe(0);
    const { snapshotId } = JSON.parse(backup.stdout) as { snapshotId: string };
    // The lost object's one chunk damaged in the vault: the restore cannot write it.
    const repo = await openVaultRepository(vault.env);
    const id = repo.blobId(lostBytes);
    flipStoredByte(await storedBlob(repo, vault.env.BACKUP_DIR!, id));

    const scratch = await createTestDatabase({ migrate: false });
    const dir = path.join(vault.dir, 'restored');
    try {
      const restore = await runCli(
        ['restore', snapshotId, '--only', 'postgres,objects', '--to-database', scratch.url, '--to-dir', dir],
        vault.env,
      );
      expect(restore.code, restore.stdout).toBe(1);
      expect(await databaseMarked(scratch.url)).toBe(true);
      expect(existsSync(path.join(dir, 'objects', kept.key))).toBe(true);
      expect(existsSync(path.join(dir, 'objects', lost.key))).toBe(false);
      // What a restore killed while writing an object leaves: its file cut short.
      truncateSync(path.join(dir, 'objects', cut.key), 1000);

      const accept = await runCli(
        ['restore', '--accept-partial', '--to-database', scratch.url, '--to-dir', dir],
        vault.env,
      );
      expect(accept.code, accept.stderr).toBe(0);
      expect(accept.stdout).toMatch(/2 objects the restored rows refer to never arrived/);
      expect(await databaseMarked(scratch.url)).toBe(false);
      const rows = await scratch.sql<{ key: string; purged: boolean }[]>`
        select key, purged_at is not null as purged from objects order by key`;
      expect(Object.fromEntries(rows.map((r) => [r.key, r.purged]))).toEqual({
        [kept.key]: false,
        [lost.key]: true,
        [cut.key]: true,
      });
    } finally {
      await scratch.drop();
    }
  }, 180_000);
});
