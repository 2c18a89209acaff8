import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../support/cli.ts';
import { createTestDatabase } from '../../support/database.ts';
import { startVaultEnv, type VaultEnv } from '../../support/vault-env.ts';

// trendgen's own loader leaves an archive with large objects to pg_restore: the restore must still bring it back.
describe('restoring a dump the COPY loader leaves to pg_restore', () => {
  let vault: VaultEnv;
  beforeAll(async () => {
    vault = await startVaultEnv('restore-large-object');
    await vault.db.sql`create table public.notes (id int primary key, body text)`;
    await vault.db.sql`insert into public.notes select i, 'note ' || i from generate_series(1, 500) i`;
    await vault.db.sql`select lo_from_bytea(424242, 'a large object')`;
  }, 60_000);
  afterAll(async () => vault?.close());

  it('I7: a database with a large object restores, verified, rows and large object included', async () => {
    const backup = await runCli(['backup', '--json'], vault.env);
    expect(backup.code, backup.stderr).toBe(0);
    const target = await createTestDatabase({ migrate: false });
    try {
      const restore = await runCli(
        ['restore', 'latest', '--only', 'postgres', '--to-database', target.url],
        vault.env,
      );
      expect(restore.code, restore.stderr).toBe(0);
      const [notes] = await target.sql<{ n: number }[]>`select count(*)::int as n from public.notes`;
      expect(notes!.n).toBe(500);
      const [object] = await target.sql<{ body: string }[]>`
        select convert_from(lo_get(424242), 'UTF8') as body`;
      expect(object!.body).toBe('a large object');
    } finally {
      await target.drop();
    }
  }, 120_000);
});
