import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { deleteUserData } from '../../src/generation/user-data.ts';
import { syncLedgerEverywhere } from '../../src/vault/ledger.ts';
import { fakePng, SAMPLE_PROMPT } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

describe('the deletion ledger', () => {
  let vault: VaultEnv | undefined;
  const databases: TestDatabase[] = [];
  afterAll(async () => {
    await vault?.close();
    for (const db of databases) await db.drop();
  });

  it('I3: a deletion made after a snapshot is applied again when that snapshot is restored', async () => {
    vault = await startVaultEnv('ledger');
    const { db, env, objects } = vault;
    const photo = await objects.put(Readable.from([fakePng(5000)]), { kind: 'photo', maxBytes: 1e9 });
    await db.sql`insert into prompts (name, current_version) values ('p', 1)`;
    await db.sql`insert into prompt_versions (name, version, sha256, content, origin) values ('p', 1, ${'0'.repeat(64)}, ${SAMPLE_PROMPT('p')}, 'api')`;
    await db.sql`insert into trends (slug, title, prompt_name) values ('t', 'T', 'p')`;
    await db.sql`insert into generations (user_id, trend_slug, prompt_name, prompt_version, params, variants, photo_key, status)
      values ('erin', 't', 'p', 1, '{}', 1, ${photo.key}, 'succeeded')`;
    const backup = await runCli(['backup'], env);
    expect(backup.code, backup.stderr).toBe(0);

    // After the snapshot: erin asks for her data to be deleted.
    await deleteUserData(db.sql, 'erin');
    const synced = await syncLedgerEverywhere(loadConfig(env, { dotEnv: false }), db.sql);
    expect(synced).toEqual([{ target: 'local', written: 1 }]);

    const target = await createTestDatabase({ migrate: false });
    databases.push(target);
    const restore = await runCli(
      ['restore', 'latest', '--only', 'postgres', '--to-database', target.url, '--json'],
      env,
    );
    expect(restore.code, restore.stderr).toBe(0);
    expect(JSON.parse(restore.stdout).deletionsReapplied).toBe(1);
    const [row] = await target.sql`select deleted_at, photo_key from generations where user_id = 'erin'`;
    expect(row!.deleted_at).not.toBeNull();
    const [object] = await target.sql`select deleted_at from objects where key = ${row!.photo_key as string}`;
    expect(object!.deleted_at).not.toBeNull();
  }, 120_000);
});
