import {
  type BaseBackupRecord,
  listBaseBackups,
  listWalKeys,
  type Repository,
  readWalRecord,
  type WalRecord,
} from '../repository/index.ts';
import { DEFAULT_SEGMENT_BYTES, parseLsn, parseSegmentName, segmentName, segmentOf } from './lsn.ts';

/** The request cannot be met from what the repository holds; the message says what it does hold. */
export class PointInTimeError extends Error {
  override name = 'PointInTimeError';
}

export interface PointInTimePlan {
  base: BaseBackupRecord;
  /** The WAL to replay, in order, from the base backup's start; the last may be a partial segment. */
  wal: WalRecord[];
  /** The newest moment this WAL makes recoverable (the database's clock). */
  coversUntil: Date | undefined;
  /** The moment to stop at; undefined replays everything the archive holds. */
  target: Date | undefined;
}

/** The contiguous run of segments from `startSegno` on one timeline, ending at the first gap or a partial one. */
async function walChain(repo: Repository, timeline: number, startSegno: bigint): Promise<WalRecord[]> {
  const keys = await listWalKeys(repo);
  const complete = new Set(keys.filter((k) => k.kind === 'segment').map((k) => k.name));
  const partials = new Set(keys.filter((k) => k.kind === 'partial').map((k) => k.name));
  const chain: WalRecord[] = [];
  for (let segno = startSegno; ; segno++) {
    const name = segmentName(timeline, segno, DEFAULT_SEGMENT_BYTES);
    if (complete.has(name)) {
      chain.push(await readWalRecord(repo, 'segment', name));
      continue;
    }
    if (partials.has(name)) chain.push(await readWalRecord(repo, 'partial', name));
    return chain;
  }
}

function chainEnd(chain: WalRecord[]): bigint | undefined {
  const last = chain.at(-1);
  return last?.endLsn ? parseLsn(last.endLsn) : undefined;
}

function newestCover(chain: WalRecord[]): Date | undefined {
  const times = chain
    .map((r) => (r.coversUntil ? Date.parse(r.coversUntil) : Number.NaN))
    .filter((t) => !Number.isNaN(t));
  return times.length ? new Date(Math.max(...times)) : undefined;
}

/** The recoverable window on this repository: from the oldest usable base backup to the newest moment. */
export async function recoverableWindow(
  repo: Repository,
): Promise<{ from: Date; until: Date | undefined; bases: number } | undefined> {
  const { backups } = await listBaseBackups(repo);
  let from: Date | undefined;
  let until: Date | undefined;
  let bases = 0;
  for (const base of backups) {
    const chain = await walChain(repo, base.timeline, segmentOf(parseLsn(base.startLsn)));
    const end = chainEnd(chain);
    if (end === undefined || end < parseLsn(base.endLsn)) continue;
    bases++;
    from ??= new Date(base.time);
    const cover = newestCover(chain);
    if (cover && (!until || cover > until)) until = cover;
  }
  return from ? { from, until, bases } : undefined;
}

/**
 * Chooses the newest base backup finished at or before the target whose WAL reaches its end (so it becomes
 * consistent), and the WAL after it. `target` undefined means the newest moment the archive holds; a target
 * beyond that, or before the oldest usable base backup, is refused with the window that exists.
 */
export async function planPointInTime(
  repo: Repository,
  target: Date | undefined,
  options: { clamp?: boolean } = {},
): Promise<PointInTimePlan> {
  const { backups } = await listBaseBackups(repo);
  if (backups.length === 0) {
    throw new PointInTimeError(
      `The repository at ${repo.location} holds no base backup: point-in-time restore needs continuous protection (trendgen protect) to have run.`,
    );
  }
  let oldestUsable: Date | undefined;
  for (const base of [...backups].reverse()) {
    const chain = await walChain(repo, base.timeline, segmentOf(parseLsn(base.startLsn)));
    const end = chainEnd(chain);
    if (end === undefined || end < parseLsn(base.endLsn)) continue;
    // The usable base backup just after this one: where a gap in the stream, if any, ends.
    const newer = oldestUsable;
    oldestUsable = new Date(base.time);
    if (target && Date.parse(base.time) > target.getTime()) continue;
    const coversUntil = newestCover(chain);
    // Asked for the newest moment up to `target` (clamp): the archive's newest moment is the answer.
    if (target && coversUntil && target > coversUntil && options.clamp)
      return { base, wal: chain, coversUntil, target: coversUntil };
    if (target && coversUntil && target > coversUntil && newer) {
      throw new PointInTimeError(
        `${target.toISOString()} falls in a gap of the WAL stream in ${repo.location}: nothing between ${coversUntil.toISOString()} and the next base backup at ${newer.toISOString()} can be restored (the stream lost its replication slot); choose a moment outside it.`,
      );
    }
    if (target && coversUntil && target > coversUntil) {
      throw new PointInTimeError(
        `The newest recoverable moment in ${repo.location} is ${coversUntil.toISOString()}; ${target.toISOString()} is later: choose an earlier time, or restore latest.`,
      );
    }
    return { base, wal: chain, coversUntil, target };
  }
  throw new PointInTimeError(
    oldestUsable
      ? `${target?.toISOString()} is before the oldest base backup in ${repo.location} (${oldestUsable.toISOString()}): the recoverable window starts there.`
      : `No base backup in ${repo.location} has the WAL it needs to become consistent: take a new one with trendgen protect.`,
  );
}

export function timelineOf(record: WalRecord): number {
  return record.kind === 'history' ? record.timeline : parseSegmentName(record.name).timeline;
}
