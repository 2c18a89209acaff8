import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { tableFacts } from '../../src/vault/sources/postgres-facts.ts';
import { SAMPLE_PROMPT } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

describe('restore --in-place', () => {
  let vault: VaultEnv | undefined;
  afterAll(async () => vault?.close());

  it('I9: refuses without --yes, then puts the database, Redis and prompts back exactly as they were', async () => {
    vault = await startVaultEnv('in-place');
    const { env, promptsDir } = vault;
    const db = vault.db;
    const redis = new Redis(vault.redisUrl);
    redis.on('error', () => {});
    writeFileSync(path.join(promptsDir, 'keep.yaml'), SAMPLE_PROMPT('keep'));
    await db.sql`create table notes as select g as id, 'note ' || g as body from generate_series(1, 1000) g`;
    await redis.set('session:1', 'alive');
    expect((await runCli(['backup'], env)).code).toBe(0);
    // The catalog row of the backup is finished after its own dump was taken: it legitimately differs.
    const facts = async () => {
      const all = await tableFacts(db.url);
      delete all['public.backup_runs'];
      // The restore records itself there for the object collector (I3): one row more, by design.
      delete all['public.object_store_restores'];
      return all;
    };
    const before = await facts();

    // A bad day: rows deleted, a key overwritten, a prompt mangled and another added.
    await db.sql`delete from notes where id > 10`;
    await redis.set('session:1', 'overwritten');
    await redis.set('junk', 'x');
    writeFileSync(path.join(promptsDir, 'keep.yaml'), 'garbage: [');
    writeFileSync(path.join(promptsDir, 'extra.yaml'), SAMPLE_PROMPT('extra'));

    const noYes = await runCli(['restore', 'latest', '--in-place'], env);
    expect(noYes.code).toBe(2);
    expect(noYes.stderr).toMatch(/add --yes/);
    const refused = await runCli(['restore', 'latest'], env);
    expect(refused.code).toBe(1);
    const [still] = await db.sql`select count(*)::int as n from notes`;
    expect(still!.n).toBe(10);

    const restored = await runCli(['restore', 'latest', '--in-place', '--yes', '--json'], env);
    expect(restored.code, restored.stderr).toBe(0);
    await db.sql.end();
    const { openDatabase } = await import('../../src/db/connection.ts');
    db.sql = openDatabase(db.url, { max: 2 });
    expect(await facts()).toEqual(before);
    expect(await redis.get('session:1')).toBe('alive');
    expect(await redis.exists('junk')).toBe(0);
    expect(readFileSync(path.join(promptsDir, 'keep.yaml'), 'utf8')).toBe(SAMPLE_PROMPT('keep'));
    expect(() => readFileSync(path.join(promptsDir, 'extra.yaml'))).toThrow();
    redis.disconnect();
  }, 120_000);
});
