import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import type { BlobStore } from '../blobstore/blobstore.ts';
import { openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { deleteUserData } from '../generation/user-data.ts';
import { closeRunsAfterRestore } from './catalog.ts';
import { readLedger } from './ledger.ts';
import type { Repository, Snapshot } from './repository/index.ts';
import {
  databaseMarked,
  dirMarked,
  markDatabase,
  markDir,
  markRedis,
  redisMarked,
  unmarkDir,
} from './restore-markers.ts';
import { objectsSource } from './sources/objects.ts';
import { postgresSource } from './sources/postgres.ts';
import { isDatabaseEmpty } from './sources/postgres-admin.ts';
import { openLoader } from './sources/postgres-loader.ts';
import { promptsSource } from './sources/prompts.ts';
import { redisKeyCount, redisSource } from './sources/redis.ts';
import { secretsSource } from './sources/secrets.ts';
import { refuseUnverifiable, type SnapshotSource, type SourceName } from './sources/types.ts';
import { loadSnapshots } from './targets.ts';

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

export async function resolveSnapshot(repo: Repository, ref: string): Promise<Snapshot> {
  if (ref === 'latest') {
    const [latest] = await loadSnapshots(repo);
    if (!latest)
      throw new Error(`The repository at ${repo.location} holds no snapshot yet: run trendgen backup first.`);
    return latest;
  }
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
  if (plan.parts.includes('postgres') && !(await isDatabaseEmpty(plan.databaseUrl))) {
    if (await databaseMarked(plan.databaseUrl)) leftovers.postgres = true;
    else busy.push('the database has tables');
  }
  if (plan.parts.includes('redis') && (await redisKeyCount(plan.redisUrl)) > 0) {
    if (await redisMarked(plan.redisUrl)) leftovers.redis = true;
    else busy.push('Redis has keys');
  }
  if (plan.parts.includes('prompts') && dirHasFiles(plan.promptsDir)) {
    if (dirMarked(plan.promptsDir)) leftovers.prompts = true;
    else busy.push(`${plan.promptsDir} has files`);
  }
  if (busy.length) {
    throw new RestoreRefusedError(
      `Restoring would overwrite live data (${busy.join('; ')}): restore alongside with --to-database/--to-dir, or replace it with --in-place --yes.`,
    );
  }
  return leftovers;
}

/**
 * Restores a snapshot, all of it or some parts. Objects come first and the database after, so no restored
 * row refers to a missing object (I2); every part is verified against the facts recorded at backup time
 * (I7); deletions recorded after the snapshot are applied again (I3).
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
  const report: RestoreReport = {
    snapshot: { id: snapshot.id, time: snapshot.time },
    parts: {},
    deletionsReapplied: 0,
    durationMs: 0,
  };
  try {
    // Every destination is marked before anything is written to it; the marks go only once all is verified.
    if (plan.parts.includes('postgres')) await markDatabase(plan.databaseUrl, snapshot.id);
    if (plan.parts.includes('redis')) await markRedis(plan.redisUrl, snapshot.id);
    if (plan.parts.includes('prompts')) markDir(plan.promptsDir, snapshot.id);
    // A killed restore of the same snapshot may have left its scratch folder: start from nothing.
    rmSync(plan.scratchDir, { recursive: true, force: true });
    mkdirSync(plan.scratchDir, { recursive: true });
    // Objects before the database, so no restored row refers to a missing object (I2).
    const sources: SnapshotSource<unknown>[] = [
      objectsSource(plan.objects),
      promptsSource(plan.promptsDir),
      postgresSource(plan.databaseUrl, loader),
      redisSource(plan.redisUrl),
      secretsSource(plan.secretsDir),
    ];
    // A destination a source empties is marked again at once.
    const remark: Partial<Record<SourceName, () => Promise<void>>> = {
      postgres: () => markDatabase(plan.databaseUrl, snapshot.id),
      redis: () => markRedis(plan.redisUrl, snapshot.id),
    };
    for (const source of sources.filter((s) => plan.parts.includes(s.name))) {
      report.parts[source.name] = await source.restore({
        repo,
        tree: snapshot.trees[source.name]!,
        facts: facts[source.name],
        scratch: plan.scratchDir,
        clear: plan.inPlace || Boolean(leftovers[source.name as keyof Leftovers]),
        cleared: async () => await remark[source.name]?.(),
        overwrite: plan.inPlace,
        progress,
      });
    }
    if (plan.parts.includes('postgres')) {
      report.deletionsReapplied = await settleDatabase(repo, snapshot, plan, loader!.url);
      await markDatabase(plan.databaseUrl, undefined);
    }
    if (plan.parts.includes('redis')) await markRedis(plan.redisUrl, undefined);
    if (plan.parts.includes('prompts')) unmarkDir(plan.promptsDir);
  } finally {
    rmSync(plan.scratchDir, { recursive: true, force: true });
    await loader?.release();
  }
  report.durationMs = Date.now() - started;
  return report;
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
  loaderUrl: string,
): Promise<number> {
  const { records } = await readLedger(repo, snapshot.time);
  if (records.length === 0 && !plan.sourceTarget) return 0;
  // As the loader: a trigger the dump brought runs with no more power than the dump had while loading.
  const sql = openDatabase(loaderUrl, { max: 1 });
  try {
    await migrate(sql);
    const users = [...new Set(records.map((r) => r.userId))];
    for (const user of users) await deleteUserData(sql, user);
    if (plan.sourceTarget) await closeRunsAfterRestore(sql, snapshot, plan.sourceTarget);
    return users.length;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
