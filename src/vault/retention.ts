import type { Config } from '../config/config.ts';
import { type ForgetResult, type RetentionPolicy, runForget } from './forget.ts';
import { openRepository, resolveTargets } from './targets.ts';

export interface TargetRetention {
  target: string;
  result?: ForgetResult;
  error?: string;
}

/**
 * Applies a retention policy on each target (all, or `only`), one after another; a target that fails is
 * reported and the others still run.
 */
export async function applyRetention(
  config: Config,
  policy: RetentionPolicy,
  options: { prune?: boolean; dryRun?: boolean; now?: number; only?: string[] } = {},
): Promise<TargetRetention[]> {
  const results: TargetRetention[] = [];
  for (const target of resolveTargets(config, options.only)) {
    try {
      const repo = await openRepository(target, config);
      const result = await runForget(repo, policy, {
        prune: Boolean(options.prune),
        dryRun: Boolean(options.dryRun),
        ...(options.now !== undefined ? { now: options.now } : {}),
      });
      results.push({ target: target.name, result });
    } catch (error) {
      results.push({ target: target.name, error: (error as Error).message });
    }
  }
  return results;
}
