import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLedger } from '../../src/vault/ledger.ts';
import { dumpPostgres } from '../../src/vault/sources/postgres.ts';
import { runCli } from '../support/cli.ts';
import { poisonDatabase } from '../support/crafted-dump.ts';
import { createTestDatabase } from '../support/database.ts';
import { forgeDeletion, forgeSnapshot, forgeTree, readRecordJson } from '../support/forge-repository.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';
import { openVaultRepository } from './vault-repository.ts';

/**
 * Someone who can write an unencrypted repository, and knows docs/repository-format.md, writes a snapshot
 * whose dump runs `COPY … TO PROGRAM`. Its records are not tagged with the repository key, which is not in the
 * repository: the snapshot is refused by name, nothing runs, the drill fails loudly.
 */
describe('I7: records not written by a key holder are refused by name', () => {
  let vault: VaultEnv;
  let repoDir: string;
  let realId: string;
  let forgedId: string;
  const marker = path.join(os.tmpdir(), `trendgen-forged-${randomBytes(6).toString('hex')}`);

  beforeAll(async () => {
    vault = await startVaultEnv('authenticated-records');
    repoDir = vault.env.BACKUP_DIR!;
    const backup = await runCli(['backup', '--json'], vault.env);
    expect(backup.code, backup.stderr).toBe(0);
    realId = (JSON.parse(backup.stdout) as { snapshotId: string }).snapshotId;
    // The attacker's dump, with facts that match it, beside the real snapshot's other trees.
    const poisoned = await createTestDatabase();
    try {
      await poisonDatabase(poisoned.url, marker);
      const dumpDir = path.join(vault.dir, 'forged-dump');
      const dump = await dumpPostgres(poisoned.url, dumpDir);
      const real = await readRecordJson(repoDir, `snapshots/${realId}`);
      forgedId = forgeSnapshot(repoDir, {
        ...real,
        time: new Date(Date.now() + 3_600_000).toISOString(),
        trees: { ...(real.trees as object), postgres: forgeTree(repoDir, dumpDir) },
        facts: { ...(real.facts as object), postgres: dump.facts },
      });
    } finally {
      await poisoned.drop();
    }
  }, 120_000);
  afterAll(async () => {
    rmSync(marker, { force: true });
    await vault?.close();
  });

  async function restoreForged(env: Record<string, string>) {
    const target = await createTestDatabase({ migrate: false });
    try {
      const restore = await runCli(
        [
          'restore',
          forgedId,
          '--to-database',
          target.url,
          '--to-dir',
          path.join(vault.dir, `r-${randomBytes(3).toString('hex')}`),
        ],
        env,
      );
      const [row] = await target.sql<{ n: number }[]>`
        select count(*)::int as n from pg_tables where schemaname = 'public'`;
      return { ...restore, tables: row!.n };
    } finally {
      await target.drop();
    }
  }

  it('restore refuses the forged snapshot by name; nothing runs, nothing is written', async () => {
    const restore = await restoreForged(vault.env);
    expect(restore.code).toBe(1);
    expect(restore.stderr).toContain(forgedId);
    expect(restore.stderr).toMatch(/not authenticated by the repository key/);
    expect(restore.tables).toBe(0);
    expect(existsSync(marker)).toBe(false);
  }, 120_000);

  it('the drill of it fails loudly and is recorded as failed', async () => {
    const drill = await runCli(['drill', forgedId], vault.env);
    expect(drill.code).toBe(1);
    expect(drill.stdout).toMatch(/^FAIL snapshot/);
    expect(drill.stdout).toMatch(/not authenticated by the repository key/);
    expect(existsSync(marker)).toBe(false);
    const [row] = await vault.db.sql`select status, snapshot_id from drill_runs order by id desc limit 1`;
    expect(row).toMatchObject({ status: 'failed', snapshot_id: forgedId });
  }, 120_000);

  it('check names it; the real snapshot stays restorable and latest', async () => {
    const check = await runCli(['check', '--json'], vault.env);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain(forgedId);
    const snapshots = await runCli(['snapshots', '--json'], vault.env);
    const listed = JSON.parse(snapshots.stdout) as {
      snapshots: Array<{ id: string; status?: string; problem?: string }>;
    };
    expect(listed.snapshots.find((s) => s.id === realId)?.status ?? 'ok').toBe('ok');
    // A record no key holder wrote is listed as damaged, with why (issue 15, item 4), never as a snapshot.
    expect(listed.snapshots.find((s) => s.id === forgedId)).toMatchObject({
      status: 'damaged',
      problem: expect.stringMatching(/not authenticated by the repository key/),
    });
  }, 120_000);

  it('stripping or swapping the key in config does not let it through', async () => {
    const configFile = path.join(repoDir, 'config');
    const original = readFileSync(configFile);
    try {
      const config = JSON.parse(original.toString()) as Record<string, unknown>;
      const { authentication: _, ...stripped } = config;
      writeFileSync(configFile, JSON.stringify({ ...stripped, version: 1 }));
      const downgraded = await restoreForged(vault.env);
      expect(downgraded.code).toBe(1);
      expect(downgraded.stderr).toMatch(/not authenticated by the repository key/);
      writeFileSync(
        configFile,
        JSON.stringify({
          ...config,
          authentication: { algorithm: 'hmac-sha256', keyId: '0123456789abcdef' },
        }),
      );
      const swapped = await restoreForged(vault.env);
      expect(swapped.code).toBe(1);
      expect(swapped.stderr).toMatch(/was written with the key 0123456789abcdef, not with this key/);
      expect(existsSync(marker)).toBe(false);
    } finally {
      writeFileSync(configFile, original);
    }
  }, 120_000);

  it('a forged deletion is never applied: it reads as unreadable', async () => {
    const name = forgeDeletion(repoDir, { id: 999, userId: 'victim', requestedAt: new Date().toISOString() });
    const { records, unreadable } = await readLedger(
      await openVaultRepository(vault.env),
      new Date(0).toISOString(),
    );
    expect(records.map((r) => r.userId)).not.toContain('victim');
    expect(unreadable).toEqual([`ledger/deletions/${name}`]);
  });

  it('on a new machine the key is needed (BACKUP_KEY), as a password is for an encrypted repository', async () => {
    const bare = { ...vault.env, DATA_DIR: path.join(vault.dir, 'new-machine') };
    const dir = path.join(vault.dir, 'new-machine-restore');
    const refused = await runCli(['restore', realId, '--only', 'prompts', '--to-dir', dir], bare);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/set BACKUP_KEY to the content of DATA_DIR\/secrets\/backup-key/);
    const key = readFileSync(path.join(vault.env.DATA_DIR!, 'secrets', 'backup-key'), 'utf8').trim();
    const restored = await runCli(['restore', realId, '--only', 'prompts', '--to-dir', dir], {
      ...bare,
      BACKUP_KEY: key,
    });
    expect(restored.code, restored.stderr).toBe(0);
    expect(readdirSync(path.join(vault.env.DATA_DIR!, 'secrets'))).toContain('backup-key');
  }, 120_000);
});
