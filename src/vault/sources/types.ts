import type { Repository, Snapshot, StoreStats } from '../repository/index.ts';

/**
 * What each source records about itself in a snapshot, so that a restore (and a drill) can prove it brought
 * back exactly what was backed up (I7).
 */

export interface TableFacts {
  rows: number;
  /** Order-independent digest of the table's rows (see postgres-facts.ts); equal contents give equal digests. */
  hash: string;
  /** How `hash` was computed; absent: `row-text` (every snapshot taken before 2026-12-06). */
  method?: DigestMethod;
}

/**
 * `row-text`: the sum of the first 64 bits of md5(row text); `record-hash`: the sum of PostgreSQL's
 * hash_record_extended (14 and later), 4-5x cheaper, for tables whose column types hash by value alone.
 */
export type DigestMethod = 'row-text' | 'record-hash';

export interface PostgresFacts {
  serverVersion: string;
  serverVersionNum: number;
  database: string;
  /** `schema.table` → facts, for every ordinary table in the dump. */
  tables: Record<string, TableFacts>;
}

export interface PostgresDump {
  facts: PostgresFacts;
  /** Keys of live objects (`objects.deleted_at is null`) in the same database snapshot as the dump (I8). */
  liveObjectKeys: string[];
}

export interface RedisFacts {
  /** `rdb`: an RDB file taken over the replication protocol; `dump`: one DUMP payload per key. */
  method: 'rdb' | 'dump';
  keys: number;
  /** Logical databases that held keys. */
  dbs: number[];
  /** Keys per logical database (`"0"` → count) in the backup: what a restore is verified against. */
  keysPerDb: Record<string, number>;
  /** When the dump was taken (ms since the epoch): TTLs in `keys.jsonl` are stated as of this moment. */
  takenAt: number;
}

export type SourceName = 'postgres' | 'redis' | 'prompts' | 'objects' | 'secrets';

type Progress = (
  phase: string,
  detail?: string,
  counts?: { done?: number; total?: number; bytes?: number },
) => void;

/** Everything a source needs to put itself into a snapshot. */
export interface BackupContext {
  repo: Repository;
  /** A folder of this run for dumps; removed when the run ends. */
  scratch: string;
  /** The parent snapshot: unchanged files and objects are not read again. */
  parent: Snapshot | undefined;
  progress: Progress;
}

/** What a source stored: its root tree, the facts a restore is verified against (I7), and statistics. */
export interface SourceBackup<Facts> {
  tree: string;
  facts: Facts;
  stats: { blobsAdded: number; bytesAdded: number } & Record<string, unknown>;
}

/** Everything a source needs to bring its part of a snapshot back. */
export interface RestoreContext<Facts> {
  repo: Repository;
  /** The source's root tree in the snapshot. */
  tree: string;
  /** The facts recorded at backup time; absent in snapshots that carry none. */
  facts: Facts | undefined;
  /** A folder of this restore for downloaded dumps; removed when the restore ends. */
  scratch: string;
  /** The destination holds data to replace (in place, or what an interrupted restore left): empty it first. */
  clear: boolean;
  /** Called right after the source emptied its destination, so the restore can mark it again. */
  cleared(): Promise<void>;
  /** In place: entries already at the destination are overwritten rather than refused. */
  overwrite: boolean;
  progress: Progress;
}

/** A restored part that does not match its backup. */
export class RestoreVerificationError extends Error {
  override name = 'RestoreVerificationError';
}

/**
 * One of a snapshot's four parts (I8): postgres, redis, prompts, objects. `backup` dumps the live part and
 * stores it; `restore` brings a stored tree back into the source's destination, verified against the facts
 * where the part allows it (throwing RestoreVerificationError), and returns what the restore report shows.
 */
export interface SnapshotSource<Facts> {
  readonly name: SourceName;
  backup(ctx: BackupContext): Promise<SourceBackup<Facts>>;
  restore(ctx: RestoreContext<Facts>): Promise<Record<string, unknown>>;
}

/** Skipped entries named in a snapshot's statistics; more are counted, not listed. */
const SKIPPED_LISTED = 50;

/** A directory stored with the archiver, as the snapshot records its statistics: what it skipped, by path. */
export function directoryStats(stats: StoreStats): SourceBackup<unknown>['stats'] {
  return {
    ...stats,
    skipped: stats.skipped.length,
    ...(stats.skipped.length ? { skippedEntries: stats.skipped.slice(0, SKIPPED_LISTED) } : {}),
  };
}

/** The progress callback the archiver takes, reporting under `phase`. */
export function directoryProgress(ctx: BackupContext, phase: string): (stats: StoreStats) => void {
  return (stats) =>
    ctx.progress(phase, undefined, {
      done: stats.filesNew + stats.filesChanged + stats.filesUnchanged,
      bytes: stats.bytesRead,
    });
}

/** A snapshot without the facts its restore is verified against: refused before anything is written (I7). */
export class UnverifiedSnapshotError extends RestoreVerificationError {
  override name = 'UnverifiedSnapshotError';
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isCount = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;

/** What is wrong with a part's facts, or undefined when a restore of it can be verified. */
function factsProblem(part: string, facts: unknown): string | undefined {
  if (!isRecord(facts)) return 'records no facts';
  if (part === 'postgres') {
    const tables = facts['tables'];
    if (!isRecord(tables)) return 'records no table facts';
    // Every trendgen database has its schema's tables: "0 tables match" proves nothing.
    if (Object.keys(tables).length === 0) return 'records no table at all';
    const bad = Object.entries(tables).find(
      ([, t]) => !isRecord(t) || !isCount(t['rows']) || !/^[0-9a-f]{16}$/.test(String(t['hash'])),
    );
    if (bad) return `records no row count and digest for ${bad[0]}`;
  }
  if (part === 'redis') {
    const perDb = facts['keysPerDb'];
    if (!isRecord(perDb) || !Object.values(perDb).every(isCount)) return 'records no key counts';
    if (facts['method'] !== 'rdb' && facts['method'] !== 'dump') return 'records no dump method';
    if (typeof facts['takenAt'] !== 'number') return 'records no dump time';
  }
  return undefined;
}

/**
 * The parts whose restore is proven against facts (PostgreSQL's row counts and digests, Redis's key counts)
 * must carry them; a snapshot that does not is "unverified" and refused, never reported as verified.
 */
export function refuseUnverifiable(snapshot: Snapshot, parts: readonly string[]): void {
  const facts = (snapshot.facts ?? {}) as Record<string, unknown>;
  const problems = parts
    .filter((part) => part === 'postgres' || part === 'redis')
    .map((part) => [part, factsProblem(part, facts[part])] as const)
    .filter(([, problem]) => problem !== undefined)
    .map(([part, problem]) => `${part} ${problem}`);
  if (problems.length) {
    throw new UnverifiedSnapshotError(
      `Snapshot ${snapshot.id.slice(0, 12)} is unverified (${problems.join('; ')}): a restore could not prove it brought back what was backed up, so it was refused and nothing was written.`,
    );
  }
}
