import type { Repository, Snapshot } from './repository/index.ts';
import { loadSnapshots } from './targets.ts';

export interface RetentionPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  /** Keep every snapshot younger than this many milliseconds. */
  withinMs?: number;
}

export interface Decision {
  snapshot: Snapshot;
  keep: boolean;
  reasons: string[];
}

/** `14d`, `36h`, `2w`, `6m` (30-day months), `1y`. */
export function parseDuration(text: string): number {
  const match = /^(\d+)([hdwmy])$/.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not a duration such as 36h, 14d, 2w, 6m or 1y.`);
  const hours = { h: 1, d: 24, w: 24 * 7, m: 24 * 30, y: 24 * 365 }[match[2] as 'h' | 'd' | 'w' | 'm' | 'y'];
  return Number(match[1]) * hours * 3600 * 1000;
}

function isoWeek(date: Date): string {
  const day = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()));
  const weekday = day.getUTCDay() || 7;
  day.setUTCDate(day.getUTCDate() + 4 - weekday);
  const yearStart = Date.UTC(day.getUTCFullYear(), 0, 1);
  return `${day.getUTCFullYear()}-W${Math.ceil(((day.getTime() - yearStart) / 86400000 + 1) / 7)}`;
}

const BUCKETS: Array<[keyof RetentionPolicy, (d: Date) => string]> = [
  ['hourly', (d) => d.toISOString().slice(0, 13)],
  ['daily', (d) => d.toISOString().slice(0, 10)],
  ['weekly', isoWeek],
  ['monthly', (d) => d.toISOString().slice(0, 7)],
];

/**
 * restic's rules: walking from the newest snapshot, keep-last keeps the first N; keep-hourly keeps the newest
 * snapshot of each of the N most recent hours that have one (and so on for days, weeks, months); keep-within
 * keeps everything younger than the window. A snapshot is kept when any rule keeps it.
 */
export function applyPolicy(snapshots: Snapshot[], policy: RetentionPolicy, now = Date.now()): Decision[] {
  const newestFirst = [...snapshots].sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  const seen = new Map<string, Set<string>>();
  return newestFirst.map((snapshot, index) => {
    const reasons: string[] = [];
    const time = new Date(snapshot.time);
    if (policy.last !== undefined && index < policy.last) reasons.push('last');
    if (policy.withinMs !== undefined && now - time.getTime() <= policy.withinMs) reasons.push('within');
    for (const [rule, bucketOf] of BUCKETS) {
      const limit = policy[rule];
      if (!limit) continue;
      const buckets = seen.get(rule) ?? new Set<string>();
      seen.set(rule, buckets);
      const bucket = bucketOf(time);
      if (!buckets.has(bucket) && buckets.size < limit) {
        buckets.add(bucket);
        reasons.push(rule);
      }
    }
    return { snapshot, keep: reasons.length > 0, reasons };
  });
}

export interface ForgetResult {
  decisions: Decision[];
  removed: string[];
  pruned: { blobs: number; bytes: number } | undefined;
}

/**
 * Forgets the snapshots the policy does not keep and, with prune, deletes the blobs no remaining snapshot
 * refers to — under an exclusive lock, and only from a complete check (a damaged tree could hide references,
 * and deleting blobs it needs would turn damage into loss).
 */
export async function runForget(
  repo: Repository,
  policy: RetentionPolicy,
  options: { prune?: boolean; dryRun?: boolean; now?: number } = {},
): Promise<ForgetResult> {
  const lock = await repo.lock({ exclusive: true });
  try {
    const snapshots = await loadSnapshots(repo);
    const decisions = applyPolicy(snapshots, policy, options.now);
    if (decisions.length > 0 && !decisions.some((d) => d.keep)) {
      throw new Error('The retention policy keeps no snapshot at all; refusing to forget every backup.');
    }
    const doomed = decisions.filter((d) => !d.keep).map((d) => d.snapshot.id);
    if (options.dryRun) return { decisions, removed: doomed, pruned: undefined };
    for (const id of doomed) {
      lock.assertHeld();
      await repo.deleteSnapshot(id);
    }
    let pruned: ForgetResult['pruned'];
    if (options.prune) {
      const report = await repo.check({ readData: false });
      if (!report.unreferencedBlobs) {
        throw new Error(
          'Prune stopped: the repository has damaged snapshots or trees, so unused blobs cannot be told apart; run trendgen check and repair first.',
        );
      }
      const done = await repo.pruneBlobs(
        new Set(report.unreferencedBlobs),
        () => lock.assertHeld(),
        report.missingBlobs.length === 0,
      );
      pruned = { blobs: done.blobs, bytes: done.bytes };
    }
    return { decisions, removed: doomed, pruned };
  } finally {
    await lock.release();
  }
}
