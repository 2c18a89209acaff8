import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { type Repository, RepositoryLockedError } from '../../../src/vault/repository/index.ts';

export const lockKeys = async (repo: Repository) => {
  const keys: string[] = [];
  for await (const info of repo.store.list('locks/')) keys.push(info.key);
  return keys;
};

/** The lock cases every target must pass; `open` gives a fresh repository per case. */
export function lockSuite(name: string, open: () => Promise<Repository>): void {
  describe(`locks (${name})`, () => {
    it('two exclusive lockers: the second fails with RepositoryLockedError naming the holder and since when', async () => {
      const repo = await open();
      const held = await repo.lock({ exclusive: true, refreshEveryMs: 0 });
      const error = await repo.lock({ exclusive: true, refreshEveryMs: 0 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RepositoryLockedError);
      expect((error as Error).message).toContain(
        `process ${process.pid} on ${os.hostname()} since ${held.record.createdAt}`,
      );
      expect((error as RepositoryLockedError).holder.exclusive).toBe(true);
      // The loser removed its own lock object.
      expect(await lockKeys(repo)).toEqual([`locks/${held.id}`]);
      await held.release();
      expect(await lockKeys(repo)).toEqual([]);
      const again = await repo.lock({ exclusive: true, refreshEveryMs: 0 });
      await again.release();
    });

    it('shared locks coexist; exclusive and shared exclude each other', async () => {
      const repo = await open();
      const a = await repo.lock({ exclusive: false, refreshEveryMs: 0 });
      const b = await repo.lock({ exclusive: false, refreshEveryMs: 0 });
      await expect(repo.lock({ exclusive: true, refreshEveryMs: 0 })).rejects.toBeInstanceOf(
        RepositoryLockedError,
      );
      await a.release();
      await b.release();
      const x = await repo.lock({ exclusive: true, refreshEveryMs: 0 });
      await expect(repo.lock({ exclusive: false, refreshEveryMs: 0 })).rejects.toThrow(
        /an exclusive lock is held/,
      );
      await x.release();
    });

    it('racing exclusive lockers never both win', async () => {
      const repo = await open();
      for (let round = 0; round < 5; round++) {
        const results = await Promise.allSettled(
          [1, 2, 3].map(() => repo.lock({ exclusive: true, refreshEveryMs: 0 })),
        );
        const won = results.filter((r) => r.status === 'fulfilled');
        expect(won.length).toBeLessThanOrEqual(1);
        for (const r of results)
          if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(RepositoryLockedError);
        for (const r of won) await r.value.release();
        expect(await lockKeys(repo)).toEqual([]);
      }
    });
  });
}
