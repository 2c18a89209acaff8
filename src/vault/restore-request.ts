import path from 'node:path';
import type { Config } from '../config/config.ts';
import { connectServices } from '../embedded/connect.ts';
import { databaseOf, withDatabase } from '../lib/connection-url.ts';
import { type ClassicRestoreResult, restoreClassicSnapshot } from './classic/index.ts';
import { knownElsewhere } from './latest.ts';
import type { Snapshot } from './repository/index.ts';
import {
  RESTORE_PARTS,
  type RestorePart,
  type RestorePlan,
  type RestoreReport,
  resolveSnapshot,
  runRestore,
} from './restore.ts';
import { refuseWhileServiceRuns, restoredObjectStore } from './restore-guards.ts';
import { createDatabaseIfMissing } from './sources/postgres-admin.ts';
import { openFirstTarget } from './targets.ts';

/** What an operator asks for: `trendgen restore` and anything else that restores on request. */
export interface RestoreRequest {
  /** A snapshot id, a unique prefix, or `latest`. */
  ref: string;
  only?: string[];
  /** Restore PostgreSQL into this database instead (created when missing). */
  toDatabase?: string;
  /** Restore prompts and objects under this folder instead. */
  toDir?: string;
  inPlace?: boolean;
  /** Read from this target instead of the first one that opens; `latest` is then the newest there. */
  target?: string;
  /** `latest`: go on with the newest good snapshot when a newer one is damaged or missing. */
  acceptOlder?: boolean;
  onProgress?: RestorePlan['onProgress'];
}

export type RestoreOutcome =
  | { kind: 'vault'; snapshot: Snapshot; parts: RestorePart[]; report: RestoreReport }
  | { kind: 'classic'; snapshot: Snapshot; result: ClassicRestoreResult };

/** The request itself is wrong (exit status 2 on the command line); nothing was read or written. */
export class RestoreRequestError extends Error {
  override name = 'RestoreRequestError';
}

/** The parts to restore: `only` when given; with --to-dir alone, the parts that go into folders. */
export function restoreParts(request: Pick<RestoreRequest, 'only' | 'toDir' | 'toDatabase'>): RestorePart[] {
  const bad = (request.only ?? []).filter((p) => !(RESTORE_PARTS as readonly string[]).includes(p));
  if (bad.length)
    throw new RestoreRequestError(`--only takes ${RESTORE_PARTS.join(', ')}; not ${bad.join(', ')}.`);
  if (request.only) return request.only as RestorePart[];
  if (request.toDir) return request.toDatabase ? ['postgres', 'prompts', 'objects'] : ['prompts', 'objects'];
  return [...RESTORE_PARTS];
}

/** The parts asked for that the snapshot has: secrets only when it holds them (snapshots before did not). */
function partsOf(snapshot: Snapshot, parts: RestorePart[], explicit: boolean): RestorePart[] {
  return explicit ? parts : parts.filter((part) => part !== 'secrets' || snapshot.trees.secrets);
}

/** Creates the --to-database database when it does not exist yet, through the server's `postgres` database. */
async function prepareDatabase(url: string): Promise<void> {
  await createDatabaseIfMissing(withDatabase(url, 'postgres'), databaseOf(url));
}

/**
 * Plans and runs a restore: the snapshot from the first target that opens, destinations from the request
 * (alongside, or in place), the embedded PostgreSQL and Redis started when they are the destination and not
 * running. An imported classic archive goes only where it is told, since its SQL is the classic schema.
 */
export async function restoreFromTargets(config: Config, request: RestoreRequest): Promise<RestoreOutcome> {
  const asked = restoreParts(request);
  const { target, repo } = await openFirstTarget(config, request.target ? [request.target] : undefined);
  const snapshot = await resolveSnapshot(repo, request.ref, {
    acceptOlder: Boolean(request.acceptOlder),
    ...(request.ref === 'latest'
      ? { known: await knownElsewhere(config, target.name, Boolean(request.target)) }
      : {}),
  });
  if (snapshot.trees.classic_sql || snapshot.trees.classic_data) {
    if (!request.toDatabase && !request.toDir) {
      throw new RestoreRequestError(
        'This snapshot is an imported classic backup: give --to-database URL and/or --to-dir DIR.',
      );
    }
    const result = await restoreClassicSnapshot(repo, snapshot, {
      ...(request.toDatabase ? { databaseUrl: request.toDatabase } : {}),
      ...(request.toDir ? { toDir: path.resolve(request.toDir) } : {}),
    });
    return { kind: 'classic', snapshot, result };
  }
  const parts = partsOf(snapshot, asked, Boolean(request.only));
  const embeddedPostgres = parts.includes('postgres') && !request.toDatabase;
  const services =
    embeddedPostgres || parts.includes('redis')
      ? await connectServices(config, { postgres: embeddedPostgres, redis: parts.includes('redis') })
      : undefined;
  try {
    if (request.toDatabase) await prepareDatabase(request.toDatabase);
    const databaseUrl = request.toDatabase ?? services?.databaseUrl ?? '';
    await refuseWhileServiceRuns(config, { ...request, parts, databaseUrl });
    const report = await runRestore(repo, snapshot, {
      parts,
      databaseUrl,
      redisUrl: services?.redisUrl ?? '',
      promptsDir: request.toDir ? path.resolve(request.toDir, 'prompts') : config.promptsDir,
      secretsDir: path.join(request.toDir ? path.resolve(request.toDir) : config.dataDir, 'secrets'),
      objects: restoredObjectStore(config, request.toDir),
      inPlace: Boolean(request.inPlace),
      scratchDir: path.join(config.dataDir, 'tmp', `restore-${snapshot.id.slice(0, 12)}`),
      sourceTarget: target.name,
      ...(request.onProgress ? { onProgress: request.onProgress } : {}),
    });
    return { kind: 'vault', snapshot, parts, report };
  } finally {
    await services?.release();
  }
}
