import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../../config/config.ts';
import { runAsFor } from '../../embedded/run-as.ts';
import { liveObjects } from '../../objects/queries.ts';
import { historyGaps } from '../../prompts/index.ts';
import type { DrillCheck, DrillReport } from '../drill.ts';
import type { Repository } from '../repository/index.ts';
import { storedObjectKeys } from '../sources/objects-tree.ts';
import { loadSnapshots } from '../targets.ts';
import { planPointInTime, recoverableWindow } from './pitr-plan.ts';
import { restorePhysical } from './pitr-restore.ts';

/** Every object key the repository can bring back: the union of the snapshots' objects trees. */
async function restorableObjectKeys(repo: Repository): Promise<Set<string>> {
  const keys = new Set<string>();
  for (const snapshot of await loadSnapshots(repo)) {
    if (snapshot.trees.objects)
      for (const key of await storedObjectKeys(repo, snapshot.trees.objects)) keys.add(key);
  }
  return keys;
}

/**
 * A restore drill of a moment (I11): a random moment in the recoverable window (or the one given) is restored
 * from its base backup and WAL into a scratch data directory; the promoted server must answer, its prompt
 * history must have no gaps, and every object its rows refer to must be restorable from the vault (I8). The
 * time from the start to the end of verification is the measured recovery time.
 */
export async function runMomentDrill(config: Config, repo: Repository, moment?: Date): Promise<DrillReport> {
  const window = await recoverableWindow(repo);
  if (!window?.until) {
    return {
      status: 'failed',
      snapshot: { id: 'moment', time: new Date().toISOString() },
      recoverySeconds: 0,
      checks: [{ name: 'window', ok: false, detail: 'the repository holds no base backup with its WAL yet' }],
      reason: 'window: the repository holds no base backup with its WAL yet',
    };
  }
  const from = window.from.getTime();
  const target = moment ?? new Date(from + Math.random() * (window.until.getTime() - from));
  const dir = path.join(config.dataDir, 'tmp', `drill-moment-${randomBytes(4).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const checks: DrillCheck[] = [];
  const started = performance.now();
  let recoveredTo: string | undefined;
  try {
    const plan = await planPointInTime(repo, target);
    const restorable = await restorableObjectKeys(repo);
    const result = await restorePhysical(repo, plan, {
      dataDir: path.join(dir, 'pgdata'),
      scratch: path.join(dir, 'scratch'),
      superuser: config.postgres.user,
      runAs: runAsFor('postgres', dir),
      inspect: async (connect) => {
        const sql = connect(config.postgres.database);
        const rows = await liveObjects(sql);
        const missing = rows.filter((row) => !restorable.has(row.key)).map((row) => row.key);
        checks.push({
          name: 'objects',
          ok: missing.length === 0,
          detail: missing.length
            ? `${missing.length} of ${rows.length} objects the restored rows refer to are in no snapshot: ${missing.slice(0, 5).join(', ')}`
            : `all ${rows.length} objects the restored rows refer to are in the vault`,
        });
        const { prompts, gaps } = await historyGaps(sql);
        checks.push({
          name: 'prompt-history',
          ok: gaps.length === 0,
          detail: gaps.length ? `history has gaps for ${gaps.join(', ')}` : `${prompts} prompts, no gaps`,
        });
      },
    });
    recoveredTo = result.recoveredTo;
    checks.unshift({
      name: 'postgres',
      ok: true,
      detail: `replayed ${result.walFiles} WAL files from base backup ${result.baseBackup.id} to ${result.recoveredTo ?? 'its end'}`,
    });
  } catch (error) {
    checks.push({ name: 'restore', ok: false, detail: (error as Error).message });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const failed = checks.filter((c) => !c.ok);
  return {
    status: failed.length ? 'failed' : 'passed',
    snapshot: { id: 'moment', time: recoveredTo ?? target.toISOString() },
    recoverySeconds: Math.round((performance.now() - started) / 10) / 100,
    checks,
    ...(failed.length ? { reason: failed.map((c) => `${c.name}: ${c.detail}`).join('; ') } : {}),
  };
}
