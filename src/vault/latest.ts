import type { Config } from '../config/config.ts';
import { openDatabase } from '../db/connection.ts';
import { embeddedPostgres } from '../embedded/connect.ts';
import { latestSuccessOn } from './catalog.ts';
import type { Repository, Snapshot } from './repository/index.ts';
import { openRepository, readSnapshots, resolveTargets } from './targets.ts';

/**
 * What `latest` means: the newest snapshot, never quietly an older one. A snapshot newer than the newest good
 * record here (a damaged record, one the catalog or another target knows but this repository lacks) stops
 * the restore with one sentence naming it, unless the operator accepts the older one.
 */

/** A snapshot known elsewhere (the backup catalog, another target) with the time it was taken. */
export interface KnownSnapshot {
  id: string;
  time: string;
  /** Where it is known from, for the sentence: "the backup catalog", "target s3". */
  source: string;
  /** How to get it, for the sentence. */
  remedy: string;
}

export interface LatestOptions {
  /** Go on with the newest good snapshot when a newer one is damaged or missing. */
  acceptOlder?: boolean;
  /** Snapshots the catalog or other targets hold; any newer than the newest here stops the restore. */
  known?: KnownSnapshot[];
}

/** `latest` cannot be the newest: which snapshot, and what to do. */
export class NewestSnapshotUnavailableError extends Error {
  override name = 'NewestSnapshotUnavailableError';
}

const short = (id: string) => id.slice(0, 12);

export async function newestSnapshot(repo: Repository, options: LatestOptions = {}): Promise<Snapshot> {
  const { snapshots, damaged } = await readSnapshots(repo);
  const [newest] = snapshots;
  const newestMs = newest ? Date.parse(newest.time) : Number.NEGATIVE_INFINITY;
  const held = new Set([...snapshots.map((s) => s.id), ...damaged.map((d) => d.id)]);
  // A damaged record's own time is unreadable: unless its file is older than the newest good snapshot, it
  // may be the newest.
  const problems = damaged
    .filter((d) => d.modified === undefined || Date.parse(d.modified) >= newestMs)
    .map(
      (d) =>
        `the snapshot record ${short(d.id)} in ${repo.location} is damaged and may be the newest (${d.reason.replace(/\.$/, '')}); trendgen check --read-data --repair moves it aside`,
    );
  for (const known of options.known ?? []) {
    if (held.has(known.id) || !(Date.parse(known.time) > newestMs)) continue;
    problems.push(
      `the newest snapshot ${short(known.id)} of ${known.time} (per ${known.source}) is missing from ${repo.location}; ${known.remedy}`,
    );
    break;
  }
  if (problems.length && !options.acceptOlder) {
    const older = newest
      ? `restore the newest good snapshot here, ${short(newest.id)} of ${newest.time}, with --accept-older`
      : 'no older snapshot is readable here either';
    throw new NewestSnapshotUnavailableError(
      `${problems[0]!.charAt(0).toUpperCase()}${problems[0]!.slice(1)}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}; or ${older}.`,
    );
  }
  if (!newest)
    throw new Error(`The repository at ${repo.location} holds no snapshot yet: run trendgen backup first.`);
  return newest;
}

/**
 * What else knows of snapshots on `target`: the backup catalog of the service's database when it is
 * reachable (never started for this), and the other configured targets unless the operator named this one.
 * Best effort: what cannot be read tells nothing.
 */
export async function knownElsewhere(
  config: Config,
  target: string,
  named: boolean,
): Promise<KnownSnapshot[]> {
  const known: KnownSnapshot[] = [];
  // Another target first: what holds the snapshot says best what to do.
  for (const other of named ? [] : resolveTargets(config).filter((t) => t.name !== target)) {
    try {
      const repo = await openRepository(other, config);
      const [newest] = (await readSnapshots(repo)).snapshots;
      if (newest)
        known.push({
          id: newest.id,
          time: newest.time,
          source: `target ${other.name}`,
          remedy: `restore it from there with --target ${other.name}`,
        });
    } catch {
      // An unreachable target is reported by snapshots and check.
    }
  }
  const databaseUrl = config.databaseUrl ?? embeddedPostgres(config).findRunning()?.url;
  if (databaseUrl) {
    const sql = openDatabase(databaseUrl, { max: 1 });
    try {
      const run = await latestSuccessOn(sql, target);
      if (run?.snapshotId && run.finishedAt)
        known.push({
          id: run.snapshotId,
          time: run.finishedAt.toISOString(),
          source: 'the backup catalog',
          remedy: 'find it on another target (--target) or in an earlier copy of the repository',
        });
    } catch {
      // No catalog here (a bare machine, a database not migrated yet).
    } finally {
      await sql.end({ timeout: 5 });
    }
  }
  return known;
}
