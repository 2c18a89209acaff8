import { loadConfig } from '../../src/config/config.ts';
import type { Repository } from '../../src/vault/repository/index.ts';
import { localTarget, openRepository } from '../../src/vault/targets.ts';

/** The local target's repository as a `trendgen` command with this environment opens it. */
export async function openVaultRepository(env: Record<string, string>): Promise<Repository> {
  const config = loadConfig(env, { dotEnv: false });
  return await openRepository(localTarget(config), config);
}
