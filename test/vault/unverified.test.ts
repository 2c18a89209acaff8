import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/database.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';
import { openVaultRepository } from './vault-repository.ts';

/** A snapshot without the facts its restore is proven against is "unverified": refused, never "verified". */
describe('I7: a snapshot without verification facts is refused as unverified', () => {
  let vault: VaultEnv;
  const crafted: Record<string, string> = {};
  beforeAll(async () => {
    vault = await startVaultEnv('unverified');
    const backup = await runCli(['backup', '--json'], vault.env);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout) as { snapshotId: string }).snapshotId;
    // Written as a key holder would (the record itself is authentic): only the facts are missing.
    const repo = await openVaultRepository(vault.env);
    const { id: _id, facts, ...record } = await repo.loadSnapshot(id);
    const { postgres, ...others } = facts as Record<string, unknown>;
    crafted.noFacts = await repo.saveSnapshot({ ...record, time: new Date().toISOString() });
    crafted.noTables = await repo.saveSnapshot({
      ...record,
      facts: { ...others, postgres: { ...(postgres as object), tables: {} } },
    });
  }, 120_000);
  afterAll(async () => vault?.close());

  for (const [name, reason] of [
    ['noFacts', /postgres records no facts/],
    ['noTables', /postgres records no table at all/],
  ] as const) {
    it(`restore refuses it (${name}) before writing anything`, async () => {
      const target = await createTestDatabase({ migrate: false });
      try {
        const restore = await runCli(
          ['restore', crafted[name]!, '--to-database', target.url, '--to-dir', path.join(vault.dir, name)],
          vault.env,
        );
        expect(restore.code).toBe(1);
        expect(restore.stderr).toMatch(/is unverified/);
        expect(restore.stderr).toMatch(reason);
        expect(restore.stdout).not.toMatch(/verified against/);
        const [row] = await target.sql<
          { n: number }[]
        >`select count(*)::int as n from pg_tables where schemaname = 'public'`;
        expect(row!.n).toBe(0);
      } finally {
        await target.drop();
      }
    }, 120_000);
  }

  it('the drill fails on it, saying unverified', async () => {
    const drill = await runCli(['drill', crafted.noFacts!], vault.env);
    expect(drill.code).toBe(1);
    expect(drill.stdout).toMatch(/^FAIL snapshot/);
    expect(drill.stdout).toMatch(/unverified/);
    expect(drill.stdout).not.toMatch(/ok {3}postgres/);
  }, 180_000);
});
