import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unfinishedRestore } from '../../src/vault/restore-markers.ts';
import { isDatabaseEmpty } from '../../src/vault/sources/postgres-admin.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/database.ts';
import { seededRandom } from '../support/files.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';
import { faultRuns, recordRun, runSeed, scenarioSelected } from './harness/report.ts';
import {
  addLiveData,
  compareRestore,
  type Ledger,
  type Listed,
  ledgerSize,
  listSnapshots,
  newLedger,
  prepareLiveTable,
  restoreAndCompare,
} from './vault-ledger.ts';

/**
 * One `it` doing faultRuns() runs of a scenario, each with a fresh seed from runSeed, and one `it` per seed
 * that once found a bug (kept as a regression case; skipped when FAULT_SEED replays one run).
 */
function scenario(
  name: string,
  title: string,
  once: (seed: number, run: number) => Promise<void>,
  regressions: number[],
): void {
  it.skipIf(!scenarioSelected(name))(
    `${name}: ${title}`,
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
}

/** What forget keeps in prune-killed: few enough that every run forgets and prunes something. */
const KEEP_LAST = 3;

/**
 * trendgen backup, forget --prune and restore, each SIGKILLed at a random moment (scaled by a measured full
 * run). One service and one repository for the file, growing run by run.
 */
describe('faults: vault commands SIGKILLed', () => {
  let vault: VaultEnv;
  let env: Record<string, string>;
  const ledger: Ledger = newLedger();
  /** Snapshots whose backup exited 0, still expected to be listed. */
  let acknowledged: Listed[] = [];
  const durations = { backup: 0, forget: 0, restore: 0 };

  const backup = async () => {
    const result = await runCli(['backup', '--json'], env);
    if (result.code !== 0) return { ok: false as const, result };
    const { snapshotId, time } = JSON.parse(result.stdout) as { snapshotId: string; time: string };
    acknowledged.push({ id: snapshotId, time });
    return { ok: true as const, id: snapshotId, result };
  };

  /** check --read-data must be clean; a listed snapshot that does not verify is a partial one. */
  const checkClean = async (): Promise<string | undefined> => {
    const check = await runCli(['check', '--read-data', '--json'], env);
    return check.code === 0
      ? undefined
      : `check --read-data exited ${check.code}: ${check.stdout}${check.stderr}`;
  };

  /** Every acknowledged snapshot is listed; the newest one restores every acknowledged write. */
  const verify = async (label: string) => {
    const listed = new Set((await listSnapshots(env)).map((s) => s.id));
    const missing = acknowledged.filter((s) => !listed.has(s.id));
    const newest = [...acknowledged].sort((a, b) => Date.parse(b.time) - Date.parse(a.time))[0]!;
    const verdict = await restoreAndCompare(vault, ledger, newest.id, label);
    return {
      lost: verdict.lost + missing.length,
      corrupted: verdict.corrupted,
      problems: [
        ...verdict.problems,
        ...missing.map((s) => `acknowledged snapshot ${s.id} no longer listed`),
      ],
    };
  };

  beforeAll(async () => {
    vault = await startVaultEnv('vault-kills', { BACKUP_PASSWORD: 'a password for the kill test' });
    env = vault.env;
    await prepareLiveTable(vault);
    const random = seededRandom(1);
    await addLiveData(vault, ledger, random, 'base', { objects: 20, rows: 2000 });
    let started = Date.now();
    const first = await backup();
    expect(first.ok, first.result.stderr).toBe(true);
    // Later backups are incremental: measure one of those.
    await addLiveData(vault, ledger, random, 'base2');
    started = Date.now();
    const second = await backup();
    expect(second.ok, second.result.stderr).toBe(true);
    durations.backup = Date.now() - started;
    started = Date.now();
    const forget = await runCli(['forget', '--keep-last', '100', '--prune'], env);
    expect(forget.code, forget.stderr).toBe(0);
    durations.forget = Date.now() - started;
    started = Date.now();
    const verdict = await restoreAndCompare(vault, ledger, second.ok ? second.id : '', 'initial');
    durations.restore = Date.now() - started;
    expect(verdict.problems).toEqual([]);
    console.log(`vault-kills: full runs took ${JSON.stringify(durations)} ms`);
  }, 180_000);
  afterAll(async () => vault?.close());

  scenario(
    'backup-killed',
    'a killed backup leaves a clean repository, no partial snapshot, and the next backup succeeds',
    async (seed, run) => {
      const scenario = 'backup-killed';
      const random = seededRandom(seed);
      let writes = await addLiveData(vault, ledger, random, `bk${seed}-${run}`);
      const before = new Set((await listSnapshots(env)).map((s) => s.id));
      const killAfterMs = Math.floor(random() * durations.backup * 1.1);
      const killed = await runCli(['backup', '--json'], env, { killAfterMs });
      const killedAt = Date.now();
      let snapshots = 0;
      const problems: string[] = [];
      if (killed.code === 0) {
        // It finished before the kill: an acknowledged snapshot like any other.
        const { snapshotId, time } = JSON.parse(killed.stdout) as { snapshotId: string; time: string };
        acknowledged.push({ id: snapshotId, time });
        snapshots++;
      } else if (killed.signal !== 'SIGKILL') problems.push(`backup failed on its own: ${killed.stderr}`);
      let corrupted = 0;
      const dirty = await checkClean();
      if (dirty) {
        corrupted++;
        problems.push(dirty);
      }
      const added = (await listSnapshots(env)).filter((s) => !before.has(s.id));
      if (added.length > 1) {
        corrupted++;
        problems.push(`one backup added ${added.length} snapshots`);
      }
      const next = await backup();
      const recoveryMs = Date.now() - killedAt;
      if (!next.ok) problems.push(`the next backup failed: ${next.result.stderr}`);
      else snapshots++;
      const verdict = await verify(`bk-${run}`);
      writes += snapshots;
      const lost = verdict.lost + (next.ok ? 0 : 1);
      corrupted += verdict.corrupted;
      recordRun({ scenario, seed, acknowledged: writes, lost, corrupted, recoveryMs });
      expect([...problems, ...verdict.problems], `seed ${seed}`).toEqual([]);
      expect(lost).toBe(0);
      expect(corrupted).toBe(0);
    },
    [],
  );

  scenario(
    'prune-killed',
    'a killed forget --prune leaves a clean repository, the kept snapshots, and the next prune succeeds',
    async (seed, run) => {
      const scenario = 'prune-killed';
      const random = seededRandom(seed);
      let writes = await addLiveData(vault, ledger, random, `pr${seed}-${run}`);
      const problems: string[] = [];
      const made = await backup();
      if (!made.ok) problems.push(`backup failed: ${made.result.stderr}`);
      else writes++;
      // What the policy keeps: the KEEP_LAST newest of what is listed now. The others may go.
      const listed = await listSnapshots(env);
      const kept = new Set(
        [...listed]
          .sort((a, b) => Date.parse(b.time) - Date.parse(a.time))
          .slice(0, KEEP_LAST)
          .map((s) => s.id),
      );
      acknowledged = acknowledged.filter((s) => kept.has(s.id));
      const killAfterMs = Math.floor(random() * durations.forget * 1.1);
      const killed = await runCli(['forget', '--keep-last', String(KEEP_LAST), '--prune'], env, {
        killAfterMs,
      });
      const killedAt = Date.now();
      if (killed.code !== 0 && killed.signal !== 'SIGKILL')
        problems.push(`forget failed on its own: ${killed.stdout}${killed.stderr}`);
      let corrupted = 0;
      const dirty = await checkClean();
      if (dirty) {
        corrupted++;
        problems.push(dirty);
      }
      const next = await runCli(['forget', '--keep-last', String(KEEP_LAST), '--prune'], env);
      const recoveryMs = Date.now() - killedAt;
      if (next.code !== 0) problems.push(`the next forget --prune failed: ${next.stdout}${next.stderr}`);
      const dirtyAfter = await checkClean();
      if (dirtyAfter) {
        corrupted++;
        problems.push(`after the second prune: ${dirtyAfter}`);
      }
      const verdict = await verify(`pr-${run}`);
      corrupted += verdict.corrupted;
      const lost = verdict.lost;
      recordRun({ scenario, seed, acknowledged: writes, lost, corrupted, recoveryMs });
      expect([...problems, ...verdict.problems], `seed ${seed}`).toEqual([]);
      expect(lost).toBe(0);
      expect(corrupted).toBe(0);
    },
    [],
  );

  scenario(
    'restore-killed',
    'a killed restore is rerun into the same places and gives a complete, identical result',
    async (seed, run) => {
      const scenario = 'restore-killed';
      const random = seededRandom(seed);
      let writes = await addLiveData(vault, ledger, random, `rs${seed}-${run}`);
      const problems: string[] = [];
      const made = await backup();
      if (!made.ok) problems.push(`backup failed: ${made.result.stderr}`);
      else writes++;
      const target = await createTestDatabase({ migrate: false });
      const dir = path.join(vault.dir, `restore-killed-${run}`);
      const args = [
        'restore',
        made.ok ? made.id : 'latest',
        '--only',
        'postgres,prompts,objects',
        '--to-database',
        target.url,
        '--to-dir',
        dir,
      ];
      try {
        const killAfterMs = Math.floor(random() * durations.restore * 1.1);
        const killed = await runCli(args, env, { killAfterMs });
        const killedAt = Date.now();
        console.log(
          `restore-killed: kill after ${killAfterMs} of ${durations.restore} ms: ${killed.signal ?? `exit ${killed.code}`}`,
        );
        if (killed.code !== 0 && killed.signal !== 'SIGKILL')
          problems.push(`restore failed on its own: ${killed.stderr}`);
        // A restore that finished before the kill is the result itself: a rerun over it is refused, rightly. It has
        // finished once it removed its last mark, which is also the case when it was killed on its way out after
        // that (the result is then checked as exactly as any other).
        const finished =
          killed.code === 0 ||
          (!(await isDatabaseEmpty(target.url)) &&
            !(await unfinishedRestore({
              databaseUrl: target.url,
              redisUrl: '',
              promptsDir: path.join(dir, 'prompts'),
            })));
        const rerun = finished ? { ...killed, code: 0 } : await runCli(args, env);
        const recoveryMs = Date.now() - killedAt;
        let lost = 0;
        let corrupted = 0;
        if (rerun.code !== 0) {
          problems.push(`the rerun of the restore failed: ${rerun.stderr}`);
          lost = ledgerSize(ledger);
        } else {
          const verdict = await compareRestore(ledger, dir, target.sql, { exact: true });
          lost += verdict.lost;
          corrupted += verdict.corrupted;
          problems.push(...verdict.problems);
        }
        recordRun({ scenario, seed, acknowledged: writes, lost, corrupted, recoveryMs });
        expect(problems, `seed ${seed}`).toEqual([]);
        expect(lost).toBe(0);
        expect(corrupted).toBe(0);
      } finally {
        await target.drop();
        rmSync(dir, { recursive: true, force: true });
      }
    },
    [3022],
  );
});
