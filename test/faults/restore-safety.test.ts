import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMarked } from '../../src/vault/restore-markers.ts';
import { isDatabaseEmpty } from '../../src/vault/sources/postgres-admin.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/database.ts';
import { seededRandom } from '../support/files.ts';
import { flipStoredByte } from '../support/stored-blobs.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';
import { flipByte, promptChunks, upOn } from '../vault/restore-safety-helpers.ts';
import { faultRuns, recordRun, runSeed, scenarioSelected } from './harness/report.ts';
import {
  addLiveData,
  type Ledger,
  ledgerSize,
  newLedger,
  prepareLiveTable,
  restoreAndCompare,
} from './vault-ledger.ts';

const PASSWORD = 'a password for the restore-safety faults';

/** One `it` running faultRuns() runs of a scenario, each with its own printed seed. */
function scenario(name: string, title: string, once: (seed: number, run: number) => Promise<void>): void {
  it.skipIf(!scenarioSelected(name))(
    `${name}: ${title}`,
    async () => {
      for (let run = 0; run < faultRuns(); run++) await once(runSeed(name, run), run);
    },
    3_600_000,
  );
}

const oneSentence = (stderr: string) =>
  stderr.trim().split('\n').length === 1 && stderr.startsWith('trendgen: ') && !/\n\s+at /.test(stderr);

/**
 * Restores that must not do harm (issue 15): a failed restore followed by writes and a second restore, and
 * `restore latest` when the newest snapshot is damaged or gone. One service for the file; each run backs up
 * into a repository of its own.
 */
describe('faults: restores that cannot do harm', () => {
  let vault: VaultEnv;
  const ledger: Ledger = newLedger();
  beforeAll(async () => {
    vault = await startVaultEnv('restore-safety-faults', { BACKUP_PASSWORD: PASSWORD });
    await prepareLiveTable(vault);
    await addLiveData(vault, ledger, seededRandom(3), 'base', { objects: 4, rows: 200 });
  }, 120_000);
  afterAll(async () => vault?.close());

  const backupInto = async (env: Record<string, string>) => {
    const backup = await runCli(['backup', '--json'], env);
    expect(backup.code, backup.stderr).toBe(0);
    return JSON.parse(backup.stdout) as { snapshotId: string; time: string };
  };

  scenario(
    'failed-restore-writes',
    'after a failed restore, up refuses; writes made since survive the next restore, which refuses',
    async (seed, run) => {
      const random = seededRandom(seed);
      const env = { ...vault.env, BACKUP_DIR: path.join(vault.dir, `repo-failed-${run}-${seed}`) };
      await addLiveData(vault, ledger, random, `fr${seed}-${run}`, { objects: 2, rows: 50 });
      const { snapshotId } = await backupInto(env);
      const chunks = await promptChunks(env, snapshotId);
      const chunk = chunks[Math.floor(random() * chunks.length)]!;
      const original = readFileSync(chunk.file);
      const scratch = await createTestDatabase({ migrate: false });
      const dir = path.join(vault.dir, `failed-${run}`);
      const args = [
        'restore',
        snapshotId,
        '--only',
        'postgres,prompts,objects',
        '--to-database',
        scratch.url,
        '--to-dir',
        dir,
      ];
      const problems: string[] = [];
      let acknowledged = 0;
      let lost = 0;
      let corrupted = 0;
      let recoveryMs = 0;
      try {
        // The fault: the database restores, then a damaged prompt blob fails the restore.
        flipStoredByte(chunk, random());
        const failed = await runCli(args, env);
        const failedAt = Date.now();
        if (failed.code !== 1) problems.push(`the damaged restore exited ${failed.code}: ${failed.stderr}`);
        writeFileSync(chunk.file, original);

        const up = await upOn(env, {
          databaseUrl: scratch.url,
          dir,
          dataDir: path.join(vault.dir, `up-${run}`),
        });
        if (up.served || up.code === 0) {
          corrupted++;
          problems.push(`up served the destinations a failed restore left: ${up.stderr}`);
        } else if (!/did not finish/.test(up.stderr))
          problems.push(`up failed, not saying why: ${up.stderr}`);

        // Writes after the failure, straight into the marked places or after --accept-partial.
        const accept = random() < 0.5;
        if (accept) {
          const accepted = await runCli(
            ['restore', '--accept-partial', '--to-database', scratch.url, '--to-dir', dir],
            env,
          );
          if (accepted.code !== 0) problems.push(`--accept-partial failed: ${accepted.stderr}`);
        }
        const writes = 1 + Math.floor(random() * 20);
        const rows = Array.from({ length: writes }, (_, i) => ({ id: `after-${seed}-${i}`, body: `w${i}` }));
        if (!accept) {
          // Marked, the database refuses writes by default: a plain write is turned away.
          const plain = await scratch.sql`insert into fault_rows values ('plain', 'x')`.catch(
            (e: Error) => e,
          );
          if (!(plain instanceof Error) || !/read-only/.test(plain.message))
            problems.push(`a plain write into the marked database was not refused: ${plain}`);
        }
        // A client that insists (read write) writes anyway. The table exists when the database part restored
        // before the failure; made here when it did not.
        await scratch.sql.begin('read write', async (tx) => {
          await tx`create table if not exists fault_rows (id text primary key, body text not null)`;
          await tx`insert into fault_rows ${tx(rows)}`;
        });
        acknowledged = writes;

        const again = await runCli(args, env);
        if (again.code === 0) problems.push('the second restore replaced what was written after the failure');
        else if (!oneSentence(again.stderr))
          problems.push(`the refusal was not one sentence: ${again.stderr}`);
        const kept = await scratch.sql<
          { id: string }[]
        >`select id from fault_rows where id like ${`after-${seed}-%`}`;
        lost += writes - kept.length;
        if (kept.length < writes)
          problems.push(`${writes - kept.length} writes made after the failure are gone`);
        console.log(
          `failed-restore-writes: ${accept ? 'after --accept-partial' : 'into the marked places'}, ${writes} writes kept: ${kept.length}`,
        );

        // Recovery: the backup itself still restores every acknowledged write alongside.
        const verdict = await restoreAndCompare(vault, ledger, snapshotId, `failed-${run}`, env);
        recoveryMs = Date.now() - failedAt;
        lost += verdict.lost;
        corrupted += verdict.corrupted;
        problems.push(...verdict.problems);
      } finally {
        writeFileSync(chunk.file, original);
        await scratch.drop();
        rmSync(dir, { recursive: true, force: true });
      }
      recordRun({
        scenario: 'failed-restore-writes',
        seed,
        acknowledged: acknowledged + ledgerSize(ledger),
        lost,
        corrupted,
        recoveryMs,
      });
      expect(problems, `seed ${seed}`).toEqual([]);
    },
  );

  const newestGone = (name: 'newest-snapshot-damaged' | 'newest-snapshot-deleted') =>
    scenario(
      name,
      'restore latest stops and names the newest snapshot; --accept-older goes on',
      async (seed, run) => {
        const random = seededRandom(seed);
        const env = { ...vault.env, BACKUP_DIR: path.join(vault.dir, `repo-${name}-${run}-${seed}`) };
        await addLiveData(vault, ledger, random, `${name}-a-${seed}-${run}`, { objects: 1, rows: 20 });
        const older = await backupInto(env);
        await addLiveData(vault, ledger, random, `${name}-b-${seed}-${run}`, { objects: 1, rows: 20 });
        const newest = await backupInto(env);
        const record = path.join(env.BACKUP_DIR, 'snapshots', newest.snapshotId);
        const original = readFileSync(record);
        const aside = `${record}.aside`;
        if (name === 'newest-snapshot-deleted') renameSync(record, aside);
        else if (random() < 0.5) flipByte(record, random());
        else writeFileSync(record, original.subarray(0, Math.floor(random() * original.length)));
        const faultAt = Date.now();
        const problems: string[] = [];
        let corrupted = 0;
        let lost = 0;
        let recoveryMs = 0;
        const scratch = await createTestDatabase({ migrate: false });
        const dir = path.join(vault.dir, `${name}-${run}`);
        const latest = (...flags: string[]) =>
          runCli(
            [
              'restore',
              'latest',
              '--only',
              'postgres,prompts,objects',
              '--to-database',
              scratch.url,
              '--to-dir',
              dir,
              ...flags,
            ],
            env,
          );
        try {
          const stopped = await latest();
          if (stopped.code === 0) {
            corrupted++;
            problems.push('restore latest quietly restored an older snapshot');
          } else {
            if (!oneSentence(stopped.stderr)) problems.push(`not one sentence: ${stopped.stderr}`);
            if (!stopped.stderr.includes(newest.snapshotId.slice(0, 12)))
              problems.push(`the refusal does not name ${newest.snapshotId}: ${stopped.stderr}`);
            if (!stopped.stderr.includes('--accept-older'))
              problems.push(`no way on is given: ${stopped.stderr}`);
            const untouched =
              (await isDatabaseEmpty(scratch.url)) &&
              !(await databaseMarked(scratch.url)) &&
              (!existsSync(dir) || readdirSync(dir).filter((n) => !n.startsWith('.')).length === 0);
            if (!untouched) problems.push('the stopped restore wrote something');
          }
          const accepted = await latest('--accept-older', '--json');
          if (accepted.code !== 0) problems.push(`--accept-older failed: ${accepted.stderr}`);
          else if (JSON.parse(accepted.stdout).snapshot.id !== older.snapshotId)
            problems.push('--accept-older did not restore the newest good snapshot');
          recoveryMs = Date.now() - faultAt;
        } finally {
          await scratch.drop();
          rmSync(dir, { recursive: true, force: true });
        }
        // Put back, the newest snapshot restores every acknowledged write: nothing was lost to the fault.
        if (existsSync(aside)) renameSync(aside, record);
        else writeFileSync(record, original);
        const verdict = await restoreAndCompare(vault, ledger, newest.snapshotId, `${name}-${run}`, env);
        lost += verdict.lost;
        corrupted += verdict.corrupted;
        problems.push(...verdict.problems);
        recordRun({ scenario: name, seed, acknowledged: 2, lost, corrupted, recoveryMs });
        expect(problems, `seed ${seed}`).toEqual([]);
      },
    );

  newestGone('newest-snapshot-damaged');
  newestGone('newest-snapshot-deleted');
});
