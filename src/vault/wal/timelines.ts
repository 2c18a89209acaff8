import { readAll } from '../../blobstore/blobstore.ts';
import type { Repository, WalRecord } from '../repository/index.ts';
import { readWalRecord } from '../repository/index.ts';
import { parseLsn, segmentOf } from './lsn.ts';
import { readTreeFile } from './tree-file.ts';

/**
 * Timelines: every restore to a moment promotes PostgreSQL onto a new timeline, whose history file says where
 * each ancestor ended. A restore after that one follows the history (a base backup of an older timeline, its
 * WAL up to the switch, then the new timeline's WAL), so the new timeline is recoverable from its first
 * shipped segment, not only once a base backup of its own exists.
 */

/** A stretch of one timeline on a path from the first timeline to a newer one: `[from, until)`. */
export interface TimelineLeg {
  timeline: number;
  from: bigint;
  /** Where the next timeline forked off; undefined for the path's last timeline. */
  until: bigint | undefined;
}

/**
 * A timeline, the path of legs that leads to it, and when its history file was recorded: about when it went
 * live (protect records it before any of its WAL). Undefined for the first timeline.
 */
export interface Lineage {
  timeline: number;
  legs: TimelineLeg[];
  startedAt: Date | undefined;
}

/**
 * Parses a history file (`parentTLI<TAB>switchpoint<TAB>reason` per ancestor, oldest first) of `timeline`
 * into the path of legs that ends on `timeline`.
 */
export function parseHistory(text: string, timeline: number): TimelineLeg[] {
  const legs: TimelineLeg[] = [];
  let from = 0n;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [parent, switchpoint] = line.split(/\s+/);
    const parentTimeline = Number(parent);
    if (!Number.isInteger(parentTimeline) || !switchpoint) {
      throw new Error(
        `The history file of timeline ${timeline} has a malformed line: ${JSON.stringify(line)}.`,
      );
    }
    const until = parseLsn(switchpoint);
    legs.push({ timeline: parentTimeline, from, until });
    from = until;
  }
  legs.push({ timeline, from, until: undefined });
  return legs;
}

/** The leg whose timeline holds segment `segno` on this path: the newest one that has begun by it. */
export function legOfSegment(legs: readonly TimelineLeg[], segno: bigint): TimelineLeg {
  let found = legs[0]!;
  for (const leg of legs) if (segmentOf(leg.from) <= segno) found = leg;
  return found;
}

/** The leg a base backup starting at `startLsn` on `timeline` belongs to, if it lies on this path. */
export function legOfBase(legs: readonly TimelineLeg[], timeline: number, endLsn: bigint): number {
  return legs.findIndex(
    (leg) => leg.timeline === timeline && (leg.until === undefined || endLsn <= leg.until),
  );
}

async function readHistory(repo: Repository, record: WalRecord): Promise<string> {
  return (await readAll(readTreeFile(repo, record.tree))).toString('utf8');
}

/**
 * Every timeline the repository holds WAL of, newest first, with its path. A timeline whose history file is
 * not recorded (or does not read) is its own path: only its own base backups restore it.
 */
export async function readLineages(
  repo: Repository,
  keys: ReadonlyArray<{ kind: string; name: string }>,
): Promise<{ lineages: Lineage[]; history: WalRecord[] }> {
  const timelines = new Set<number>();
  const history: WalRecord[] = [];
  for (const key of keys) timelines.add(Number.parseInt(key.name.slice(0, 8), 16));
  const legsOf = new Map<number, TimelineLeg[]>();
  const recordedAt = new Map<number, Date>();
  for (const key of keys.filter((k) => k.kind === 'history')) {
    const timeline = Number.parseInt(key.name.slice(0, 8), 16);
    try {
      const record = await readWalRecord(repo, 'history', key.name);
      legsOf.set(timeline, parseHistory(await readHistory(repo, record), timeline));
      recordedAt.set(timeline, new Date(record.shippedAt));
      history.push(record);
    } catch {
      // An unreadable history file only narrows what restores: the timeline is then its own path.
    }
  }
  const lineages = [...timelines]
    .sort((a, b) => b - a)
    .map((timeline) => ({
      timeline,
      legs: legsOf.get(timeline) ?? [{ timeline, from: 0n, until: undefined }],
      startedAt: recordedAt.get(timeline),
    }));
  return { lineages, history };
}
