import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import os from 'node:os';
import { BlobNotFoundError } from '../../blobstore/index.ts';
import { isAlive } from '../../lib/process.ts';
import { DECODE_LIMITS, DecodeError } from './codec.ts';
import { type LockHolder, LockLostError, RepositoryLockedError } from './errors.ts';
import { isObject, LOCKS_PREFIX, lockKey } from './format.ts';
import type { RepositoryHandle } from './handle.ts';
import { readAtMost } from './io.ts';

export const DEFAULT_STALE_AFTER_MS = 30 * 60 * 1000;
export const DEFAULT_REFRESH_EVERY_MS = 5 * 60 * 1000;

export interface LockOptions {
  /** Exclusive (prune, forget) conflicts with every other lock; shared (backup, check, restore) only with exclusive ones. */
  exclusive: boolean;
  /** A lock not refreshed for this long is stale and may be removed by anyone. */
  staleAfterMs?: number;
  /** How often the held lock is refreshed in the background; 0 turns the timer off. */
  refreshEveryMs?: number;
}

export interface LockRecord extends LockHolder {
  /** Tells two containers with the same host name apart, so a pid is only judged in its own namespace. */
  pidNamespace?: string;
  refreshedAt: string;
}

/**
 * Locks that stay correct on servers that ignore conditional writes: write our own lock object, then
 * list every lock and look for a conflict; on conflict remove ours and fail. Two racing exclusive
 * lockers may both fail, never both succeed. This is restic's protocol.
 */
export async function acquireLock(repo: RepositoryHandle, options: LockOptions): Promise<Lock> {
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const now = new Date().toISOString();
  const record: LockRecord = {
    host: os.hostname(),
    pid: process.pid,
    ...(PID_NAMESPACE ? { pidNamespace: PID_NAMESPACE } : {}),
    exclusive: options.exclusive,
    createdAt: now,
    refreshedAt: now,
  };
  const id = randomBytes(32).toString('hex');
  await writeLock(repo, id, record);
  try {
    // Stale locks go first, so a conflict found later does not leave them behind.
    const live: StoredLock[] = [];
    for (const other of await readLocks(repo)) {
      if (other.id === id) continue;
      if (isStale(other, staleAfterMs)) await repo.store.delete(lockKey(other.id));
      else live.push(other);
    }
    const conflict = live.find((other) => options.exclusive || other.record.exclusive);
    if (conflict) throw new RepositoryLockedError(repo.location, conflict.record);
  } catch (error) {
    await repo.store.delete(lockKey(id)).catch(() => {});
    throw error;
  }
  return new Lock(repo, id, record, staleAfterMs, options.refreshEveryMs ?? DEFAULT_REFRESH_EVERY_MS);
}

/** A held lock: refreshed on a timer until released. */
export class Lock {
  private lastRefreshed = Date.now();
  private lost: Error | undefined;
  private released = false;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly repo: RepositoryHandle,
    readonly id: string,
    readonly record: LockRecord,
    private readonly staleAfterMs: number,
    refreshEveryMs: number,
  ) {
    if (refreshEveryMs > 0) {
      this.timer = setInterval(() => {
        // A failed refresh is remembered; assertHeld reports it before the holder writes anything.
        this.refresh().catch((error: unknown) => {
          this.lost ??= error instanceof Error ? error : new Error(String(error));
        });
      }, refreshEveryMs);
      this.timer.unref();
    }
  }

  get exclusive(): boolean {
    return this.record.exclusive;
  }

  /** Rewrites the lock with a new refreshedAt; LockLostError when someone removed it as stale. */
  async refresh(): Promise<void> {
    if (this.released) return;
    if (this.lost) throw this.lost;
    if (!(await this.repo.store.head(lockKey(this.id)))) {
      this.lost = new LockLostError(
        `The lock ${this.id} on ${this.repo.location} was removed by another process (it looked stale): stop writing and start again.`,
      );
      throw this.lost;
    }
    this.record.refreshedAt = new Date().toISOString();
    await writeLock(this.repo, this.id, this.record);
    this.lastRefreshed = Date.now();
  }

  /** Throws when others may no longer see this lock: call it before a step that relies on the lock. */
  assertHeld(): void {
    if (this.released) throw new LockLostError(`The lock ${this.id} on ${this.repo.location} was released.`);
    if (this.lost) throw this.lost;
    if (Date.now() - this.lastRefreshed > this.staleAfterMs) {
      throw new LockLostError(
        `The lock ${this.id} on ${this.repo.location} was not refreshed for ${Math.round((Date.now() - this.lastRefreshed) / 1000)} s and may have been taken over.`,
      );
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.timer) clearInterval(this.timer);
    await this.repo.store.delete(lockKey(this.id));
  }
}

export interface StoredLock {
  id: string;
  record: LockRecord;
  /** False for a lock file that does not decode: it is judged by its age alone. */
  readable: boolean;
}

/** Every lock in the repository; an unreadable one counts as exclusive, so it blocks rather than hides. */
export async function readLocks(repo: RepositoryHandle): Promise<StoredLock[]> {
  const locks: StoredLock[] = [];
  for await (const info of repo.store.list(LOCKS_PREFIX)) {
    const id = info.key.slice(LOCKS_PREFIX.length);
    try {
      const stored = await readAtMost(await repo.store.get(info.key), DECODE_LIMITS.small);
      if (!stored) throw new DecodeError('larger than any lock file');
      const { plaintext } = await repo.codec.decode(stored, DECODE_LIMITS.small);
      locks.push({ id, record: checkLockRecord(JSON.parse(plaintext.toString('utf8'))), readable: true });
    } catch (error) {
      // Released between the listing and the read: no longer a lock.
      if (error instanceof BlobNotFoundError) continue;
      if (!(error instanceof DecodeError || error instanceof SyntaxError || error instanceof TypeError))
        throw error;
      const since = (info.lastModified ?? new Date(0)).toISOString();
      const host = `an unknown host (unreadable lock file ${info.key})`;
      locks.push({
        id,
        record: { host, pid: 0, exclusive: true, createdAt: since, refreshedAt: since },
        readable: false,
      });
    }
  }
  return locks;
}

/** Stale: not refreshed within the timeout, or its process is gone (same host and pid namespace only). */
export function isStale(lock: StoredLock, staleAfterMs: number): boolean {
  const refreshed = Date.parse(lock.record.refreshedAt);
  if (!Number.isFinite(refreshed) || Date.now() - refreshed > staleAfterMs) return true;
  const { host, pid, pidNamespace } = lock.record;
  return lock.readable && host === os.hostname() && pidNamespace === PID_NAMESPACE && !isAlive(pid);
}

async function writeLock(repo: RepositoryHandle, id: string, record: LockRecord): Promise<void> {
  const bytes = await repo.codec.encode('lock', Buffer.from(JSON.stringify(record)), false);
  await repo.store.put(lockKey(id), bytes, { size: bytes.length });
}

function checkLockRecord(value: unknown): LockRecord {
  const ok =
    isObject(value) &&
    typeof value['host'] === 'string' &&
    Number.isInteger(value['pid']) &&
    typeof value['exclusive'] === 'boolean' &&
    typeof value['createdAt'] === 'string' &&
    typeof value['refreshedAt'] === 'string' &&
    (value['pidNamespace'] === undefined || typeof value['pidNamespace'] === 'string');
  if (!ok) throw new TypeError('not a lock record');
  return value as unknown as LockRecord;
}

const PID_NAMESPACE = (() => {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
})();
