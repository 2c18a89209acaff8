import type { Config } from '../config/config.ts';
import type { CheckReport, Lock, Repository } from './repository/index.ts';
import { openRepository, resolveTargets } from './targets.ts';

export const UNLOCKED_CHECK_WARNING =
  'checked without a lock because none could be written (the disk is full or read-only): a prune running at the same time could make blobs look missing';

export interface TargetCheck {
  target: string;
  report?: CheckReport;
  /** Set when the check ran without its shared lock. */
  warning?: string;
  error?: string;
}

/**
 * A plain check only reads, so a target whose disk is full or read-only — exactly when an operator most
 * needs to know whether the repository is whole — is still checked, without its shared lock. Repair writes,
 * so it still needs its exclusive lock.
 */
async function lockForCheck(repo: Repository, repair: boolean): Promise<Lock | undefined> {
  try {
    return await repo.lock({ exclusive: repair });
  } catch (error) {
    const code = ((error as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    if (repair || !['ENOSPC', 'EDQUOT', 'EROFS'].includes(code ?? '')) throw error;
    return undefined;
  }
}

/** Checks the repository on each target (all, or `only`); a target that cannot be opened is reported, not thrown. */
export async function checkTargets(
  config: Config,
  options: { readData?: boolean; repair?: boolean; only?: string[] } = {},
): Promise<TargetCheck[]> {
  const results: TargetCheck[] = [];
  for (const target of resolveTargets(config, options.only)) {
    try {
      const repo = await openRepository(target, config);
      const lock = await lockForCheck(repo, Boolean(options.repair));
      try {
        const report = await repo.check({
          readData: Boolean(options.readData),
          repair: Boolean(options.repair),
        });
        results.push({ target: target.name, report, ...(lock ? {} : { warning: UNLOCKED_CHECK_WARNING }) });
      } finally {
        await lock?.release();
      }
    } catch (error) {
      results.push({ target: target.name, error: (error as Error).message });
    }
  }
  return results;
}
