import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LockLostError,
  type LockRecord,
  type Repository,
  RepositoryLockedError,
} from '../../../src/vault/repository/index.ts';
import { type TempRepo, tempRepo } from './helpers.ts';
import { lockKeys, lockSuite } from './lock-suite.ts';

let t: TempRepo;
afterEach(() => t?.remove());

/** Plants a lock as another process would have written it. */
async function plantLock(repo: Repository, record: Partial<LockRecord>): Promise<string> {
  const now = new Date().toISOString();
  const full = {
    host: 'other-host',
    pid: 4242,
    exclusive: true,
    createdAt: now,
    refreshedAt: now,
    ...record,
  };
  const key = `locks/${randomBytes(32).toString('hex')}`;
  await repo.store.put(key, await repo.codec.encode('lock', Buffer.from(JSON.stringify(full)), false));
  return key;
}

/** A pid that surely belongs to no process: one that just exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

lockSuite('file', async () => {
  t = await tempRepo();
  return t.repo;
});

describe('stale locks (file)', () => {
  it('a lock not refreshed for longer than the timeout is taken over', async () => {
    t = await tempRepo();
    const old = new Date(Date.now() - 31 * 60 * 1000).toISOString();
    const stale = await plantLock(t.repo, { createdAt: old, refreshedAt: old });
    const fresh = await plantLock(t.repo, { exclusive: false });
    await expect(t.repo.lock({ exclusive: true, refreshEveryMs: 0 })).rejects.toThrow(
      /a shared lock is held by process 4242 on other-host/,
    );
    expect(await lockKeys(t.repo)).not.toContain(stale);
    await t.repo.store.delete(fresh);
    const lock = await t.repo.lock({ exclusive: true, refreshEveryMs: 0 });
    expect(await lockKeys(t.repo)).toEqual([`locks/${lock.id}`]);
    await lock.release();
  });

  it('a fresh lock of a dead process on this host is taken over; on another host it is respected', async () => {
    t = await tempRepo();
    const pid = await deadPid();
    const pidNamespace = readlinkSync('/proc/self/ns/pid');
    await plantLock(t.repo, { host: os.hostname(), pid, pidNamespace });
    const lock = await t.repo.lock({ exclusive: true, refreshEveryMs: 0 });
    await lock.release();
    await plantLock(t.repo, { host: 'elsewhere', pid });
    await expect(t.repo.lock({ exclusive: true, refreshEveryMs: 0 })).rejects.toBeInstanceOf(
      RepositoryLockedError,
    );
    // Same host name but another pid namespace (another container): the pid says nothing there.
    const other = await tempRepo();
    try {
      await plantLock(other.repo, { host: os.hostname(), pid, pidNamespace: 'pid:[1]' });
      await expect(other.repo.lock({ exclusive: false, refreshEveryMs: 0 })).rejects.toBeInstanceOf(
        RepositoryLockedError,
      );
    } finally {
      other.remove();
    }
  });

  it('an unreadable lock file blocks like an exclusive lock until it is stale', async () => {
    t = await tempRepo();
    await t.repo.store.put(`locks/${randomBytes(32).toString('hex')}`, Buffer.from('garbage'));
    await expect(t.repo.lock({ exclusive: false, refreshEveryMs: 0 })).rejects.toThrow(
      /unreadable lock file/,
    );
    const lock = await t.repo.lock({ exclusive: false, refreshEveryMs: 0, staleAfterMs: 0 });
    await lock.release();
  });

  it('refresh moves refreshedAt; a lock removed by someone else is reported lost', async () => {
    t = await tempRepo();
    const lock = await t.repo.lock({ exclusive: false, refreshEveryMs: 0 });
    const before = lock.record.refreshedAt;
    await new Promise((resolve) => setTimeout(resolve, 5));
    await lock.refresh();
    expect(lock.record.refreshedAt > before).toBe(true);
    lock.assertHeld();
    await t.repo.store.delete(`locks/${lock.id}`);
    await expect(lock.refresh()).rejects.toBeInstanceOf(LockLostError);
    expect(() => lock.assertHeld()).toThrow(LockLostError);
    await lock.release();
  });

  it('the refresh timer runs while the lock is held', async () => {
    t = await tempRepo();
    const lock = await t.repo.lock({ exclusive: true, refreshEveryMs: 20 });
    const first = lock.record.refreshedAt;
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(lock.record.refreshedAt > first).toBe(true);
    await lock.release();
    expect(() => lock.assertHeld()).toThrow(/released/);
  });
});
