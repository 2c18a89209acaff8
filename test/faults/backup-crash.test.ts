import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { fakePng, SAMPLE_PROMPT } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/database.ts';
import { seededRandom } from '../support/files.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

const BACKUP_KILLS = Number(process.env.BACKUP_KILLS ?? 30);
const PRUNE_KILLS = Number(process.env.PRUNE_KILLS ?? 10);

describe('faults: trendgen backup and forget --prune SIGKILLed at random moments', () => {
  let vault: VaultEnv | undefined;
  afterAll(async () => vault?.close());

  it('I6: after every kill the repository checks clean, lists no partial snapshot, and the next backup restores', async () => {
    const seed = Number(process.env.BACKUP_CRASH_SEED ?? Date.now() % 1_000_000);
    console.log(`backup-crash seed ${seed}`);
    const random = seededRandom(seed);
    vault = await startVaultEnv('backup-crash', { BACKUP_PASSWORD: 'a password for the crash test' });
    const { db, env, objects, promptsDir } = vault;
    await db.sql`insert into prompts (name) values ('p')`;
    for (let i = 0; i < 60; i++)
      await objects.put(Readable.from([fakePng(150_000 + i * 1000)]), { kind: 'example', maxBytes: 1e9 });
    await db.sql`create table filler as select g as id, md5(g::text) as body from generate_series(1, 200000) g`;
    writeFileSync(path.join(promptsDir, 'p.yaml'), SAMPLE_PROMPT('p'));
    const timed = Date.now();
    const first = await runCli(['backup', '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    const fullMs = Date.now() - timed;

    let killedMidway = 0;
    for (let i = 0; i < BACKUP_KILLS; i++) {
      // New data each round so that backups have something to write when they are cut short.
      await objects.put(Readable.from([fakePng(120_000, Buffer.from(`round-${seed}-${i}`))]), {
        kind: 'photo',
        maxBytes: 1e9,
      });
      const result = await runCli(['backup'], env, { killAfterMs: Math.floor(random() * fullMs * 1.1) });
      if (result.signal === 'SIGKILL') killedMidway++;
      const check = await runCli(['check', '--read-data', '--json'], env);
      expect(check.code, `after kill ${i}: ${check.stdout}${check.stderr}`).toBe(0);
    }
    const listed = JSON.parse((await runCli(['snapshots', '--json'], env)).stdout) as {
      snapshots: unknown[];
    };
    const last = await runCli(['backup', '--json'], env);
    expect(last.code, last.stderr).toBe(0);

    for (let i = 0; i < PRUNE_KILLS; i++) {
      await runCli(['forget', '--keep-last', '2', '--prune'], env, {
        killAfterMs: 300 + Math.floor(random() * 2500),
      });
      const check = await runCli(['check', '--read-data', '--json'], env);
      expect(check.code, `after prune kill ${i}: ${check.stdout}${check.stderr}`).toBe(0);
    }
    const restoreDb = await createTestDatabase({ migrate: false });
    try {
      const restored = await runCli(
        [
          'restore',
          'latest',
          '--only',
          'postgres,prompts,objects',
          '--to-database',
          restoreDb.url,
          '--to-dir',
          path.join(vault.dir, 'restored'),
        ],
        env,
      );
      expect(restored.code, restored.stderr).toBe(0);
      const [row] = await restoreDb.sql`select count(*)::int as n from filler`;
      expect(row!.n).toBe(200000);
    } finally {
      await restoreDb.drop();
    }
    console.log(
      `backup-crash: ${BACKUP_KILLS} backup kills (${killedMidway} mid-way; a full backup took ${fullMs} ms), ${PRUNE_KILLS} prune kills, ` +
        `${listed.snapshots.length} complete snapshots listed, every check clean, the final backup restored`,
    );
  }, 900_000);
});
