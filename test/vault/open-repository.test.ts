import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { localTarget, openRepository } from '../../src/vault/targets.ts';
import { tempDir } from '../support/temp.ts';

describe('openRepository with create', () => {
  const temps: Array<{ remove(): void }> = [];
  afterEach(() => {
    for (const t of temps.splice(0)) t.remove();
  });

  it('processes that create the same new repository at once all open the one that won', async () => {
    const temp = tempDir('open-race');
    temps.push(temp);
    const config = loadConfig(
      {
        DATA_DIR: `${temp.dir}/data`,
        BACKUP_DIR: `${temp.dir}/backups`,
        BACKUP_KEY: 'ab'.repeat(32),
      },
      { dotEnv: false, cwd: temp.dir },
    );
    // Each call gets its own target (its own blob store), like separate processes.
    const repos = await Promise.all(
      Array.from({ length: 6 }, () => openRepository(localTarget(config), config, { create: true })),
    );
    const ids = new Set(repos.map((repo) => repo.config.id));
    expect(ids.size).toBe(1);
  });
});
