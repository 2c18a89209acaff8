import {
  type BaseBackupRecord,
  listBaseBackups,
  listWalKeys,
  type Repository,
  readWalRecord,
  type WalRecord,
} from '../repository/index.ts';
import { DEFAULT_SEGMENT_BYTES, parseLsn, parseSegmentName, segmentName, segmentOf } from './lsn.ts';
import { type Lineage, legOfBase, legOfSegment, readLineages, type TimelineLeg } from './timelines.ts';

/** The request cannot be met from what the repository holds; the message says what it does hold. */
export class PointInTimeError extends Error {
  override name = 'PointInTimeError';
}

export interface PointInTimePlan {
  base: BaseBackupRecord;
  /** The timeline the restore ends on: the base backup's, or a newer one its WAL leads to. */
  timeline: number;
  /** The path from the base backup's timeline to `timeline`, one leg per timeline. */
  legs: TimelineLeg[];
  /** The WAL to replay, in order, from the base backup's start; the last may be a partial segment. */
  wal: WalRecord[];
  /** Every history file recorded: PostgreSQL follows the path with them and gives the restore a timeline of its own. */
  history: WalRecord[];
  /** The newest moment this WAL makes recoverable (the database's clock). */
  coversUntil: Date | undefined;
  /** The moment to stop at; undefined replays everything the archive holds. */
  target: Date | undefined;
  /** Instead of a moment: replay to the first commit that made live an object the vault lacks (restore latest). */
  objectBarrier?: ObjectBarrier;
  /** Said when the restore goes back to an older timeline than the newest one the repository holds. */
  notice?: string;
}

/** Where restore latest may replay to without a row whose object no backup holds (object-barrier.ts). */
export interface ObjectBarrier {
  watermark: Date;
  /** Keys of the objects the vault holds (the stream's journal). */
  held: Set<string>;
}

/** One planning's view of the repository: record names, and records read at most once. */
class WalIndex {
  private readonly complete: Set<string>;
  private readonly partials: Set<string>;
  private readonly read = new Map<string, Promise<WalRecord>>();

  constructor(
    private readonly repo: Repository,
    keys: Array<{ kind: string; name: string }>,
  ) {
    this.complete = new Set(keys.filter((k) => k.kind === 'segment').map((k) => k.name));
    this.partials = new Set(keys.filter((k) => k.kind === 'partial').map((k) => k.name));
  }

  /** The contiguous run of segments from `startSegno` along the legs, ending at the first gap or a partial one. */
  async chain(legs: readonly TimelineLeg[], startSegno: bigint): Promise<WalRecord[]> {
    const chain: WalRecord[] = [];
    for (let segno = startSegno; ; segno++) {
      const name = segmentName(legOfSegment(legs, segno).timeline, segno, DEFAULT_SEGMENT_BYTES);
      if (this.complete.has(name)) {
        chain.push(await this.record('segment', name));
        continue;
      }
      if (this.partials.has(name)) chain.push(await this.record('partial', name));
      return chain;
    }
  }

  private record(kind: 'segment' | 'partial', name: string): Promise<WalRecord> {
    const key = `${kind}:${name}`;
    let found = this.read.get(key);
    if (!found) {
      found = readWalRecord(this.repo, kind, name);
      this.read.set(key, found);
    }
    return found;
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

interface Usable {
  base: BaseBackupRecord;
  legs: TimelineLeg[];
  wal: WalRecord[];
  coversUntil: Date | undefined;
}

/** The base backups on a lineage's path whose WAL reaches their end (so they become consistent), newest first. */
async function usableBases(
  index: WalIndex,
  lineage: Lineage,
  backups: BaseBackupRecord[],
): Promise<Usable[]> {
  const out: Usable[] = [];
  for (const base of [...backups].reverse()) {
    const leg = legOfBase(lineage.legs, base.timeline, parseLsn(base.endLsn));
    if (leg < 0) continue;
    const legs = lineage.legs.slice(leg);
    const wal = await index.chain(legs, segmentOf(parseLsn(base.startLsn)));
    const end = chainEnd(wal);
    if (end === undefined || end < parseLsn(base.endLsn)) continue;
    out.push({ base, legs, wal, coversUntil: newestCover(wal) });
  }
  return out;
}

async function lineagesOf(repo: Repository) {
  const { backups } = await listBaseBackups(repo);
  const keys = await listWalKeys(repo);
  const index = new WalIndex(repo, keys);
  const { lineages, history } = await readLineages(repo, keys);
  return { backups, index, lineages, history };
}

/** The recoverable window on this repository: from the oldest usable base backup to the newest moment. */
export async function recoverableWindow(
  repo: Repository,
): Promise<{ from: Date; until: Date | undefined; bases: number } | undefined> {
  const { backups, index, lineages } = await lineagesOf(repo);
  let from: Date | undefined;
  let until: Date | undefined;
  const bases = new Set<string>();
  for (const lineage of lineages) {
    for (const usable of await usableBases(index, lineage, backups)) {
      bases.add(usable.base.id);
      const time = new Date(usable.base.time);
      if (!from || time < from) from = time;
      if (usable.coversUntil && (!until || usable.coversUntil > until)) until = usable.coversUntil;
    }
  }
  return from ? { from, until, bases: bases.size } : undefined;
}

/**
 * Chooses the timeline that was live at the target (the newest one recorded before it; for the newest moment,
 * the newest timeline), then the newest base backup on its path finished at or before the target whose WAL
 * reaches its end, and the WAL after it. `target` undefined means the newest moment the archive holds; a
 * target beyond that, or before the oldest usable base backup, is refused with the window that exists.
 */
export async function planPointInTime(
  repo: Repository,
  target: Date | undefined,
  options: { clamp?: boolean } = {},
): Promise<PointInTimePlan> {
  const { backups, index, lineages, history } = await lineagesOf(repo);
  if (backups.length === 0) {
    throw new PointInTimeError(
      `The repository at ${repo.location} holds no base backup: point-in-time restore needs continuous protection (trendgen protect) to have run.`,
    );
  }
  const live = target ? lineages.filter((l) => !l.startedAt || l.startedAt <= target) : lineages;
  let refusal: PointInTimeError | undefined;
  for (const lineage of live) {
    // A moment after this timeline's end but before a newer one began: the service was down or its writes were
    // undone by a restore, and this timeline's end is what it held.
    const superseded = lineages[0]!.timeline !== lineage.timeline;
    const usable = await usableBases(index, lineage, backups);
    try {
      const plan = planOnLineage(repo, lineage, usable, target, {
        clamp: Boolean(options.clamp) || (superseded && target !== undefined),
      });
      const notice =
        lineage !== live[0]
          ? `timeline ${live[0]!.timeline}, the newest, has no usable base backup on its path yet: restoring timeline ${lineage.timeline}, which ends earlier.`
          : undefined;
      return { ...plan, history, ...(notice ? { notice } : {}) };
    } catch (error) {
      if (!(error instanceof PointInTimeError)) throw error;
      refusal ??= error;
    }
  }
  throw (
    refusal ??
    new PointInTimeError(
      `No base backup in ${repo.location} has the WAL it needs to become consistent: take a new one with trendgen protect.`,
    )
  );
}

function planOnLineage(
  repo: Repository,
  lineage: Lineage,
  usable: Usable[],
  target: Date | undefined,
  options: { clamp: boolean },
): Omit<PointInTimePlan, 'history'> {
  let newer: Date | undefined;
  for (const candidate of usable) {
    // The usable base backup just after this one: where a gap in the stream, if any, ends.
    const after = newer;
    newer = new Date(candidate.base.time);
    if (target && Date.parse(candidate.base.time) > target.getTime()) continue;
    const { coversUntil } = candidate;
    const plan = { ...candidate, timeline: lineage.timeline, target };
    if (!target || !coversUntil || target <= coversUntil) return plan;
    // Asked for the newest moment up to `target` (clamp): the archive's newest moment is the answer.
    if (options.clamp) return { ...plan, target: coversUntil };
    if (after) {
      throw new PointInTimeError(
        `${target.toISOString()} falls in a gap of the WAL stream in ${repo.location}: nothing between ${coversUntil.toISOString()} and the next base backup at ${after.toISOString()} can be restored (the stream lost its replication slot); choose a moment outside it.`,
      );
    }
    throw new PointInTimeError(
      `The newest recoverable moment in ${repo.location} is ${coversUntil.toISOString()}; ${target.toISOString()} is later: choose an earlier time, or restore latest.`,
    );
  }
  throw new PointInTimeError(
    newer
      ? `${target?.toISOString()} is before the oldest base backup in ${repo.location} (${newer.toISOString()}): the recoverable window starts there.`
      : `No base backup in ${repo.location} has the WAL it needs to become consistent: take a new one with trendgen protect.`,
  );
}

export function timelineOf(record: WalRecord): number {
  return record.kind === 'history' ? record.timeline : parseSegmentName(record.name).timeline;
}
