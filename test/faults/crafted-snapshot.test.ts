import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpPostgres } from '../../src/vault/sources/postgres.ts';
import { importClassicSql, inject, plainDump, withoutRestrict } from '../support/classic-dump.ts';
import { runCli } from '../support/cli.ts';
import { poisonDatabase } from '../support/crafted-dump.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { seededRandom } from '../support/files.ts';
import { forgeSnapshot, forgeTree, readRecordJson } from '../support/forge-repository.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';
import { faultRuns, recordRun, runSeed, scenarioSelected } from './harness/report.ts';

/**
 * "Crafted snapshot in an unencrypted repository": someone who can write the repository (and has read
 * docs/repository-format.md) plants a snapshot whose dump runs `COPY … TO PROGRAM` when loaded; or a key
 * holder backs up a database poisoned that way; or hands over a classic backup whose db.sql runs a program
 * through a psql command or `COPY … TO PROGRAM` (imported: the import takes any plain SQL). Each run picks one
 * way in by its seed. Acknowledged: the refusals checked; corrupted: a crafted snapshot restored or drilled as
 * good, or a program run on the host.
 */
const ATTACKS = [
  'untagged',
  'random-tag',
  'borrowed-tag',
  'config-downgraded',
  'key-holder-dump',
  'classic-import',
] as const;
type Attack = (typeof ATTACKS)[number];

describe('faults: a crafted snapshot in an unencrypted repository', () => {
  let vault: VaultEnv;
  let poisoned: TestDatabase;
  let repoDir: string;
  let realId: string;
  let forgedTree: string;
  let forgedFacts: unknown;
  const marker = path.join(os.tmpdir(), `trendgen-crafted-${randomBytes(6).toString('hex')}`);

  beforeAll(async () => {
    vault = await startVaultEnv('crafted-snapshot');
    repoDir = vault.env.BACKUP_DIR!;
    const backup = await runCli(['backup', '--json'], vault.env);
    expect(backup.code, backup.stderr).toBe(0);
    realId = (JSON.parse(backup.stdout) as { snapshotId: string }).snapshotId;
    poisoned = await createTestDatabase();
    await poisonDatabase(poisoned.url, marker);
    const dumpDir = path.join(vault.dir, 'crafted-dump');
    forgedFacts = (await dumpPostgres(poisoned.url, dumpDir)).facts;
    forgedTree = forgeTree(repoDir, dumpDir);
  }, 120_000);
  afterAll(async () => {
    rmSync(marker, { force: true });
    await poisoned?.drop();
    await vault?.close();
  });

  /** Plants the crafted snapshot; returns its id and how to take it away again. */
  async function plant(attack: Attack, seed: number): Promise<{ id: string; undo: () => void }> {
    if (attack === 'classic-import') {
      // A dump as pg_dump before 15.14 wrote it (no \\restrict of its own), with the attack before its data.
      const payload =
        seededRandom(seed + 1)() < 0.5
          ? `\\! touch ${marker}`
          : `COPY (select 1) TO PROGRAM 'touch ${marker}';`;
      const sql = inject(withoutRestrict(plainDump(vault.db.url)), payload);
      const two = (n: number) => String(n % 60).padStart(2, '0');
      const stamp = `20240102_03${two(Math.floor(seed / 60))}${two(seed)}`;
      const id = await importClassicSql(vault.dir, stamp, sql, vault.env);
      return { id, undo: () => rmSync(path.join(repoDir, 'snapshots', id)) };
    }
    if (attack === 'key-holder-dump') {
      const backup = await runCli(['backup', '--json'], { ...vault.env, DATABASE_URL: poisoned.url });
      expect(backup.code, backup.stderr).toBe(0);
      const id = (JSON.parse(backup.stdout) as { snapshotId: string }).snapshotId;
      return { id, undo: () => rmSync(path.join(repoDir, 'snapshots', id)) };
    }
    const real = await readRecordJson(repoDir, `snapshots/${realId}`);
    const id = forgeSnapshot(repoDir, {
      ...real,
      time: new Date().toISOString(),
      trees: { ...(real.trees as object), postgres: forgedTree },
      facts: { ...(real.facts as object), postgres: forgedFacts },
    });
    const file = path.join(repoDir, 'snapshots', id);
    const configFile = path.join(repoDir, 'config');
    const config = readFileSync(configFile);
    if (attack === 'random-tag') writeFileSync(file, Buffer.concat([readFileSync(file), randomBytes(32)]));
    if (attack === 'borrowed-tag') {
      const authentic = readFileSync(path.join(repoDir, 'snapshots', realId));
      writeFileSync(file, Buffer.concat([readFileSync(file), authentic.subarray(authentic.length - 32)]));
    }
    if (attack === 'config-downgraded') {
      const { authentication: _, ...rest } = JSON.parse(config.toString()) as Record<string, unknown>;
      writeFileSync(configFile, JSON.stringify({ ...rest, version: 1 }));
    }
    return {
      id,
      undo: () => {
        rmSync(file);
        writeFileSync(configFile, config);
      },
    };
  }

  it.skipIf(!scenarioSelected('crafted-snapshot'))(
    'crafted-snapshot: refused, nothing executed outside the database, the drill fails loudly',
    async () => {
      for (let run = 0; run < faultRuns(); run++) {
        const seed = runSeed('crafted-snapshot', run);
        const attack = ATTACKS[Math.floor(seededRandom(seed)() * ATTACKS.length)]!;
        const problems: string[] = [];
        let corrupted = 0;
        const planted = await plant(attack, seed);
        const started = Date.now();
        const target = await createTestDatabase({ migrate: false });
        try {
          const restore = await runCli(
            ['restore', planted.id, '--to-database', target.url, '--to-dir', path.join(vault.dir, `r${run}`)],
            vault.env,
          );
          if (restore.code !== 1 || !/^trendgen: /m.test(restore.stderr)) {
            corrupted++;
            problems.push(`${attack}: restore exited ${restore.code}: ${restore.stdout}${restore.stderr}`);
          }
          const drill = await runCli(['drill', planted.id], vault.env);
          if (drill.code !== 1 || !drill.stdout.startsWith('FAIL snapshot')) {
            corrupted++;
            problems.push(`${attack}: drill exited ${drill.code}: ${drill.stdout}${drill.stderr}`);
          }
          if (existsSync(marker)) {
            corrupted++;
            problems.push(`${attack}: the dump ran a program on the database host`);
            rmSync(marker);
          }
          const listed = await runCli(['snapshots', '--json'], vault.env);
          if (!listed.stdout.includes(realId))
            problems.push(`${attack}: the real snapshot is no longer listed`);
          console.log(
            `crafted-snapshot ${attack}: ${restore.stderr.trim().split('\n').at(-1)} | ${drill.stdout.split('\n')[1]?.trim()}`,
          );
        } finally {
          await target.drop();
          planted.undo();
        }
        recordRun({
          scenario: 'crafted-snapshot',
          seed,
          acknowledged: 3,
          lost: problems.some((p) => p.includes('no longer listed')) ? 1 : 0,
          corrupted,
          recoveryMs: Date.now() - started,
        });
        expect(problems, `seed ${seed} (${attack})`).toEqual([]);
      }
    },
    3_600_000,
  );
});
