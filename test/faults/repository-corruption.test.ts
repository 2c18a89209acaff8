import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../src/blobstore/file.ts';
import { Repository } from '../../src/vault/repository/index.ts';
import { databaseMarked } from '../../src/vault/restore-markers.ts';
import { isDatabaseEmpty } from '../../src/vault/sources/postgres-admin.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/database.ts';
import { seededRandom, walkFiles } from '../support/files.ts';
import { type StoredBlob, storedBlobs } from '../support/stored-blobs.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';
import { faultRuns, recordRun, runSeed, scenarioSelected } from './harness/report.ts';
import {
  addLiveData,
  type Ledger,
  ledgerSize,
  newLedger,
  prepareLiveTable,
  restoreAndCompare,
} from './vault-ledger.ts';

const PASSWORD = 'a password for the corruption test';

type Kind = 'blob' | 'tree' | 'snapshot';
type Damage = 'flip' | 'cut';

/** Where the stored bytes of what one snapshot's postgres, prompts and objects reach lie: its record, trees, data blobs. */
async function filesOf(backupDir: string, snapshotId: string) {
  const repo = await Repository.open(new FileBlobStore(backupDir), { password: PASSWORD });
  const snapshot = await repo.loadSnapshot(snapshotId);
  const trees = new Set<string>();
  const blobs = new Set<string>();
  const walk = async (id: string): Promise<void> => {
    if (trees.has(id)) return;
    trees.add(id);
    for (const entry of (await repo.readTree(id)).entries) {
      for (const chunk of entry.chunks ?? []) blobs.add(chunk);
      if (entry.subtree) await walk(entry.subtree);
    }
  };
  // Redis is left out: these restores do not include it, so damage there would rightly go unnoticed by them.
  for (const part of ['postgres', 'prompts', 'objects']) await walk(snapshot.trees[part]!);
  for (const tree of trees) blobs.delete(tree);
  const stored = new Map((await storedBlobs(repo, backupDir)).map((blob) => [blob.id, blob]));
  const record = path.join(backupDir, 'snapshots', snapshotId);
  return {
    blob: [...blobs].sort().map((id) => stored.get(id)!),
    tree: [...trees].sort().map((id) => stored.get(id)!),
    snapshot: [{ id: snapshotId, file: record, offset: 0, length: statSync(record).size }],
  } satisfies Record<Kind, StoredBlob[]>;
}

/**
 * Flips 1 to 8 random bytes of the victim, or cuts its file at a random point of the victim (possibly its start):
 * in a pack, a cut also takes every blob after it.
 */
function damage(victim: StoredBlob, how: Damage, random: () => number): void {
  const bytes = readFileSync(victim.file);
  if (how === 'cut') {
    writeFileSync(victim.file, bytes.subarray(0, victim.offset + Math.floor(random() * victim.length)));
    return;
  }
  const flips = 1 + Math.floor(random() * 8);
  for (let i = 0; i < flips; i++) {
    const at = victim.offset + Math.floor(random() * victim.length);
    bytes[at] = bytes[at]! ^ (1 + Math.floor(random() * 255));
  }
  writeFileSync(victim.file, bytes);
}

/**
 * Damage to one file of a repository: found by check --read-data, refused by restore with one sentence, and
 * repaired as an operator would (check --read-data --repair, then backup) until the live data has a
 * restorable backup again. One service for the file; each run backs up into a repository of its own.
 */
describe('faults: vault repository files damaged', () => {
  let vault: VaultEnv;
  const ledger: Ledger = newLedger();

  beforeAll(async () => {
    vault = await startVaultEnv('repository-corruption', { BACKUP_PASSWORD: PASSWORD });
    await prepareLiveTable(vault);
    await addLiveData(vault, ledger, seededRandom(2), 'base', { objects: 10, rows: 500 });
  }, 120_000);
  afterAll(async () => vault?.close());

  const scenario = (name: string, kind: Kind, how: Damage, regressions: number[] = []) => {
    const once = async (seed: number, run: number) => {
      const random = seededRandom(seed);
      const backupDir = path.join(vault.dir, `repo-${name}-${run}`);
      const env = { ...vault.env, BACKUP_DIR: backupDir };
      const problems: string[] = [];
      let corrupted = 0;
      let lost = 0;
      await addLiveData(vault, ledger, random, `${name}-${seed}-${run}`, { objects: 2, rows: 50 });
      const acknowledged = ledgerSize(ledger);
      const first = await runCli(['backup', '--json'], env);
      expect(first.code, first.stderr).toBe(0);
      const affected = (JSON.parse(first.stdout) as { snapshotId: string }).snapshotId;

      const candidates = (await filesOf(backupDir, affected))[kind];
      const victim = candidates[Math.floor(random() * candidates.length)]!;
      const victimId = victim.id;
      // The file that holds it: its own, or the pack it lies in (which repair moves aside whole).
      const victimFile = path.basename(victim.file);
      const original = readFileSync(victim.file);
      damage(victim, how, random);
      const damaged = readFileSync(victim.file);
      console.log(
        `${name}: ${how} ${victimId.slice(0, 12)} in ${path.relative(backupDir, victim.file)} (${victim.length} of ${original.length} bytes)`,
      );

      // Detection: check names it.
      const check = await runCli(['check', '--read-data', '--json'], env);
      const damageFoundAt = Date.now();
      const report = JSON.parse(check.stdout || '{"targets":[{}]}') as {
        targets: Array<{ damagedBlobs?: { id: string }[]; damagedSnapshots?: { id: string }[] }>;
      };
      const named = [
        ...(report.targets[0]!.damagedBlobs ?? []),
        ...(report.targets[0]!.damagedSnapshots ?? []),
      ];
      if (check.code !== 1 || !named.some((d) => d.id === victimId)) {
        corrupted++;
        problems.push(`check did not name ${victimId}: exit ${check.code} ${check.stdout}${check.stderr}`);
      }

      // Restore of the affected snapshot: refused in one sentence, nothing presented as complete.
      const scratch = await createTestDatabase({ migrate: false });
      const dir = path.join(vault.dir, `refused-${name}-${run}`);
      try {
        const restore = await runCli(
          [
            'restore',
            affected,
            '--only',
            'postgres,prompts,objects',
            '--to-database',
            scratch.url,
            '--to-dir',
            dir,
            '--json',
          ],
          env,
        );
        const lines = restore.stderr.trim().split('\n');
        if (restore.code === 0) {
          corrupted++;
          problems.push(`restore of the damaged snapshot exited 0: ${restore.stdout}`);
        } else if (
          lines.length !== 1 ||
          /\n\s+at /.test(restore.stderr) ||
          !restore.stderr.startsWith('trendgen: ')
        ) {
          problems.push(`restore did not fail with one plain sentence: ${restore.stderr}`);
        }
        const databaseClean = (await isDatabaseEmpty(scratch.url)) || (await databaseMarked(scratch.url));
        const promptsDir = path.join(dir, 'prompts');
        const promptsClean =
          !existsSync(promptsDir) ||
          readdirSync(promptsDir).length === 0 ||
          existsSync(path.join(dir, '.prompts.restore-incomplete'));
        if (restore.code !== 0 && (!databaseClean || !promptsClean)) {
          corrupted++;
          problems.push('the failed restore left data that is not marked as incomplete');
        }
      } finally {
        await scratch.drop();
      }

      // Recovery: move the damage aside, back up again, prove the new backup restores every live write.
      const repair = await runCli(['check', '--read-data', '--repair', '--json'], env);
      const moved = JSON.parse(repair.stdout || '{"targets":[{}]}').targets[0]?.quarantined as
        | { key: string; to: string }[]
        | undefined;
      const aside = moved?.find((q) => q.key.endsWith(victimFile));
      if (!aside)
        problems.push(`check --repair did not move ${victimId} aside: ${repair.stdout}${repair.stderr}`);
      else if (!readFileSync(path.join(backupDir, aside.to)).equals(damaged))
        problems.push('the quarantined copy differs from the damaged file');
      const next = await runCli(['backup', '--json'], env);
      let recoveryMs = 0;
      if (next.code !== 0) {
        lost += ledgerSize(ledger);
        problems.push(`the backup after repair failed: ${next.stderr}`);
      } else {
        const fresh = (JSON.parse(next.stdout) as { snapshotId: string }).snapshotId;
        const verdict = await restoreAndCompare(vault, ledger, fresh, `${name}-${run}`, env);
        recoveryMs = Date.now() - damageFoundAt;
        lost += verdict.lost;
        corrupted += verdict.corrupted;
        problems.push(...verdict.problems);
      }
      // Nothing was deleted: the damaged bytes are still somewhere under the repository.
      const kept = walkFiles(path.join(backupDir, 'quarantine'));
      if (!kept.some((f) => path.basename(f) === victimFile))
        problems.push(`${victimId} is gone from quarantine/`);
      recordRun({ scenario: name, seed, acknowledged, lost, corrupted, recoveryMs });
      expect(problems, `seed ${seed}`).toEqual([]);
      expect(lost).toBe(0);
      expect(corrupted).toBe(0);
    };
    it.skipIf(!scenarioSelected(name))(
      `${name}: a ${how === 'flip' ? 'flipped' : 'truncated'} ${kind} is detected, refused, and recovered from`,
      async () => {
        for (let run = 0; run < faultRuns(); run++) await once(runSeed(name, run), run);
      },
      3_600_000,
    );
    for (const seed of regressions) {
      it.skipIf(!scenarioSelected(name) || process.env.FAULT_SEED !== undefined)(
        `${name}: regression seed ${seed}`,
        () => once(seed, 1000),
        300_000,
      );
    }
  };

  scenario('blob-corrupted', 'blob', 'flip');
  scenario('blob-truncated', 'blob', 'cut');
  scenario('tree-corrupted', 'tree', 'flip');
  scenario('snapshot-corrupted', 'snapshot', 'flip');
  scenario('snapshot-truncated', 'snapshot', 'cut');
});
