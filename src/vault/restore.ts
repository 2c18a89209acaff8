import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { BlobStore } from '../blobstore/blobstore.ts';
import { openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { deleteUserData } from '../generation/user-data.ts';
import { deferred } from '../lib/deferred.ts';
import { syncFileSystem } from '../lib/files.ts';
import { holdOpen } from '../lib/leftovers.ts';
import { markPurged, purgedKeys, recordRestore } from '../objects/purge.ts';
import { closeRunsAfterRestore } from './catalog.ts';
import { type LatestOptions, newestSnapshot } from './latest.ts';
import { readLedger } from './ledger.ts';
import type { Repository, Snapshot } from './repository/index.ts';
import {
  databaseVerdict,
  dirVerdict,
  leaveMarks,
  type MarkVerdict,
  markDatabase,
  markDir,
  markRedis,
  redisVerdict,
  unmarkDir,
} from './restore-markers.ts';
import { objectsSource } from './sources/objects.ts';
import { postgresSource } from './sources/postgres.ts';
import { isDatabaseEmpty } from './sources/postgres-admin.ts';
import { openLoader } from './sources/postgres-loader.ts';
import { promptsSource } from './sources/prompts.ts';
import { redisKeyCount, redisSource } from './sources/redis.ts';
import { secretsSource } from './sources/secrets.ts';
import { sideBySide } from './sources/side-by-side.ts';
import { refuseUnverifiable, type SnapshotSource, type SourceName } from './sources/types.ts';

export const RESTORE_PARTS = ['postgres', 'redis', 'prompts', 'objects', 'secrets'] as const;
export type RestorePart = (typeof RESTORE_PARTS)[number];

/** A restore that would overwrite live data without --in-place --yes (I9). */
export class RestoreRefusedError extends Error {
  override name = 'RestoreRefusedError';
}

export { RestoreVerificationError } from './sources/types.ts';

export interface RestorePlan {
  parts: RestorePart[];
  databaseUrl: string;
  redisUrl: string;
  promptsDir: string;
  /** Where the service's secrets go (DATA_DIR/secrets); existing ones are kept unless in place. */
  secretsDir: string;
  objects: BlobStore;
  inPlace: boolean;
  scratchDir: string;
  /** The target the snapshot is read from: the restored catalog records the run that took it as ended there. */
  sourceTarget?: string;
  onProgress?: (
    phase: string,
    detail?: string,
    counts?: { done?: number; total?: number; bytes?: number },
  ) => void;
}

export interface RestoreReport {
  snapshot: { id: string; time: string };
  parts: Partial<Record<RestorePart, Record<string, unknown>>>;
  deletionsReapplied: number;
  durationMs: number;
}

/** `latest` is the newest snapshot or a refusal naming it (see latest.ts). */
export async function resolveSnapshot(
  repo: Repository,
  ref: string,
  latest: LatestOptions = {},
): Promise<Snapshot> {
  if (ref === 'latest') return await newestSnapshot(repo, latest);
  const ids = (await repo.listSnapshots()).filter((id) => id.startsWith(ref));
  if (ids.length === 0)
    throw new Error(`No snapshot ${ref} in ${repo.location}; trendgen snapshots lists them.`);
  if (ids.length > 1)
    throw new Error(`The prefix ${ref} matches ${ids.length} snapshots: give more characters.`);
  return await repo.loadSnapshot(ids[0]!);
}

function dirHasFiles(dir: string): boolean {
  return existsSync(dir) && readdirSync(dir).some((name) => !name.startsWith('.'));
}

/** Destinations that hold only what an interrupted restore left (they carry its marker): replaced, not refused. */
interface Leftovers {
  postgres: boolean;
  redis: boolean;
  prompts: boolean;
}

/** Checks every destination before anything is written, so a refusal changes nothing. */
async function refuseOverwrites(plan: RestorePlan): Promise<Leftovers> {
  const leftovers: Leftovers = { postgres: false, redis: false, prompts: false };
  // In place, everything is replaced anyway.
  if (plan.inPlace) return leftovers;
  const busy: string[] = [];
  const writtenSince: string[] = [];
  const judge = async (
    part: keyof Leftovers,
    what: string,
    has: string,
    verdict: () => Promise<MarkVerdict>,
  ) => {
    const found = await verdict();
    if (found === 'leftovers') leftovers[part] = true;
    else if (found === 'written-since') writtenSince.push(what);
    else busy.push(`${what} ${has}`);
  };
  if (plan.parts.includes('postgres') && !(await isDatabaseEmpty(plan.databaseUrl)))
    await judge('postgres', 'the database', 'has tables', () => databaseVerdict(plan.databaseUrl));
  if (plan.parts.includes('redis') && (await redisKeyCount(plan.redisUrl)) > 0)
    await judge('redis', 'Redis', 'has keys', () => redisVerdict(plan.redisUrl));
  if (plan.parts.includes('prompts') && dirHasFiles(plan.promptsDir))
    await judge('prompts', plan.promptsDir, 'has files', () => dirVerdict(plan.promptsDir));
  if (writtenSince.length && !busy.length) {
    throw new RestoreRefusedError(
      `An unfinished restore left ${writtenSince.join(', ')} and it was written to since, so it is not replaced: keep it with trendgen restore --accept-partial, or replace it with --in-place --yes.`,
    );
  }
  if (busy.length || writtenSince.length) {
    throw new RestoreRefusedError(
      `Restoring would overwrite live data (${[...busy, ...writtenSince.map((w) => `${w} was written to after an unfinished restore`)].join('; ')}): restore alongside with --to-database/--to-dir, or replace it with --in-place --yes.`,
    );
  }
  return leftovers;
}

/**
 * Restores a snapshot, all of it or some parts, side by side (sources/side-by-side.ts; writing the prompts from
 * their history waits for the database alone); every part is verified against the facts recorded at backup
 * time (I7); deletions recorded after the snapshot are applied again (I3). I2 holds for whatever serves the
 * result: the database stays marked (no service starts on it, and its new sessions are read-only) until every
 * object is written; a restore killed before that is rerun, or its remains accepted with --accept-partial,
 * which marks rows whose object never arrived as purged.
 */
export async function runRestore(
  repo: Repository,
  snapshot: Snapshot,
  plan: RestorePlan,
): Promise<RestoreReport> {
  const started = Date.now();
  const progress = plan.onProgress ?? (() => {});
  const facts = (snapshot.facts ?? {}) as Partial<Record<SourceName, unknown>>;
  const missing = plan.parts.filter((part) => !snapshot.trees[part]);
  if (missing.length) throw new Error(`Snapshot ${snapshot.id.slice(0, 12)} has no ${missing.join(', ')}.`);
  refuseUnverifiable(snapshot, plan.parts);
  const leftovers = await refuseOverwrites(plan);
  // Before any mark: a role that could reach the database host is refused here, with nothing written yet.
  const loader = plan.parts.includes('postgres') ? await openLoader(plan.databaseUrl) : undefined;
  const purged = plan.inPlace ? await purgedInPlace(plan) : new Set<string>();
  // Every destination is marked before anything is written to it; the marks go only once all is verified.
  if (plan.parts.includes('postgres')) await markDatabase(plan.databaseUrl, snapshot.id);
  if (plan.parts.includes('redis')) await markRedis(plan.redisUrl, snapshot.id);
  if (plan.parts.includes('prompts')) markDir(plan.promptsDir, snapshot.id);
  const report: RestoreReport = {
    snapshot: { id: snapshot.id, time: snapshot.time },
    parts: {},
    deletionsReapplied: 0,
    durationMs: 0,
  };
  // A killed restore of the same snapshot may have left its scratch folder: start from nothing.
  rmSync(plan.scratchDir, { recursive: true, force: true });
  mkdirSync(plan.scratchDir, { recursive: true });
  const release = holdOpen(plan.scratchDir);
  try {
    // The prompts folder is written from the restored database's history: it waits for that restore alone.
    const database = deferred();
    const history = plan.parts.includes('postgres')
      ? { url: plan.databaseUrl, restored: database.promise }
      : undefined;
    const sources: SnapshotSource<unknown>[] = [
      objectsSource(plan.objects, {
        skip: purged,
        ...(history ? { secondCoreFree: history.restored } : {}),
      }),
      postgresSource(plan.databaseUrl, loader),
      promptsSource(plan.promptsDir, history),
      redisSource(plan.redisUrl),
      secretsSource(plan.secretsDir),
    ].filter((s) => plan.parts.includes(s.name));
    // A destination a source empties is marked again at once.
    const remark: Partial<Record<SourceName, () => Promise<void>>> = {
      postgres: () => markDatabase(plan.databaseUrl, snapshot.id),
      redis: () => markRedis(plan.redisUrl, snapshot.id),
    };
    const restoreSource = (source: SnapshotSource<unknown>) =>
      source.restore({
        repo,
        tree: snapshot.trees[source.name]!,
        facts: facts[source.name],
        scratch: plan.scratchDir,
        clear: plan.inPlace || Boolean(leftovers[source.name as keyof Leftovers]),
        cleared: async () => await remark[source.name]?.(),
        overwrite: plan.inPlace,
        progress,
      });
    Object.assign(
      report.parts,
      await sideBySide(sources, (source) => {
        const restoring = restoreSource(source);
        if (source.name === 'postgres') restoring.then(database.resolve, database.reject);
        return restoring;
      }),
    );
    // Written without an fsync each (objects, prompts): durable before the marks go.
    if (plan.parts.includes('prompts')) await syncFileSystem(path.dirname(plan.promptsDir));
    if (plan.parts.includes('postgres')) {
      report.deletionsReapplied = await settleDatabase(repo, snapshot, plan, purged, loader!.url);
      await markDatabase(plan.databaseUrl, undefined);
    }
    if (plan.parts.includes('redis')) await markRedis(plan.redisUrl, undefined);
    if (plan.parts.includes('prompts')) unmarkDir(plan.promptsDir);
  } catch (error) {
    // What the failed restore left is fingerprinted, so a later restore erases nothing written since.
    await leaveMarks(plan, snapshot.id);
    throw error;
  } finally {
    release();
    rmSync(plan.scratchDir, { recursive: true, force: true });
    await loader?.release();
  }
  report.durationMs = Date.now() - started;
  return report;
}

/**
 * What the collector removed, read from the database an in-place restore is about to replace: those objects
 * are not written back, and stay tombstoned and purged in the restored database (I3). None when that database
 * cannot be read (a disaster restore onto a new disk): then everything the snapshot holds comes back.
 */
async function purgedInPlace(plan: RestorePlan): Promise<Set<string>> {
  if (!plan.parts.includes('objects') && !plan.parts.includes('postgres')) return new Set();
  const sql = openDatabase(plan.databaseUrl, { max: 1 });
  try {
    return await purgedKeys(sql);
  } catch {
    return new Set();
  } finally {
    await sql.end({ timeout: 5 }).catch(() => {});
  }
}

/**
 * The restored database brought up to date with what happened after its snapshot: user-data deletions
 * recorded since are re-applied, so a deleted user's photos never come back (I3), and the catalog's run that
 * took the snapshot is closed as it ended. Returns how many users' deletions were re-applied.
 */
async function settleDatabase(
  repo: Repository,
  snapshot: Snapshot,
  plan: RestorePlan,
  purged: Set<string>,
  loaderUrl: string,
): Promise<number> {
  const { records } = await readLedger(repo, snapshot.time);
  // As the loader: a trigger the dump brought runs with no more power than the dump had while loading.
  // Local commits: no WAL receiver runs during a restore, and BACKUP_SYNC would make every commit wait for one.
  const sql = openDatabase(loaderUrl, { max: 1, writable: true, localCommit: true });
  try {
    await migrate(sql);
    // Bytes the collector removed stay removed, and the collector knows this database was put back (I3).
    await markPurged(sql, [...purged]);
    await recordRestore(sql);
    const users = [...new Set(records.map((r) => r.userId))];
    for (const user of users) await deleteUserData(sql, user);
    if (plan.sourceTarget) await closeRunsAfterRestore(sql, snapshot, plan.sourceTarget);
    return users.length;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
