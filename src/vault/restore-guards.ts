import path from 'node:path';
import type { BlobStore } from '../blobstore/blobstore.ts';
import { FileBlobStore } from '../blobstore/file.ts';
import { createBlobStore } from '../blobstore/index.ts';
import type { Config } from '../config/config.ts';
import { openDatabase, SERVICE_APPLICATION_NAMES } from '../db/connection.ts';
import { connectServices, embeddedPostgres } from '../embedded/connect.ts';
import { runningPid, upPidFile } from '../lib/process.ts';
import { markPurged } from '../objects/purge.ts';
import { liveObjects } from '../objects/queries.ts';
import { type RestorePart, RestoreRefusedError } from './restore.ts';
import { clearMarks, unfinishedRestore } from './restore-markers.ts';

/** Where a restore writes, as restore-request.ts decides it. */
export interface RestoreDestinations {
  parts: RestorePart[];
  /** The database the restore writes (when it restores postgres). */
  databaseUrl: string;
  toDatabase?: string;
  toDir?: string;
}

/** The object store a restore writes: `<toDir>/objects` alongside, else the service's own. */
export function restoredObjectStore(config: Config, toDir: string | undefined): BlobStore {
  return toDir
    ? new FileBlobStore(path.resolve(toDir, 'objects'))
    : createBlobStore(config.storageUrl, config.s3);
}

async function serviceConnections(url: string): Promise<{ database: string; count: number }> {
  const sql = openDatabase(url, { max: 1 });
  try {
    const [row] = await sql<{ database: string; count: number }[]>`
      select current_database() as database, count(*)::int as count from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid()
        and application_name = any(${SERVICE_APPLICATION_NAMES})`;
    return row!;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * No restore runs into a destination whose service is running (I9): not while `trendgen up` runs on this
 * DATA_DIR and the restore writes the service's own places, and not into a database the service's processes
 * are connected to. Checked before anything is marked or written.
 */
export async function refuseWhileServiceRuns(config: Config, dest: RestoreDestinations): Promise<void> {
  const { parts } = dest;
  const own =
    parts.includes('redis') ||
    (parts.includes('postgres') && !dest.toDatabase) ||
    ((parts.includes('prompts') || parts.includes('objects')) && !dest.toDir);
  const alongside =
    'stop it before restoring into its data, or restore alongside with --to-database/--to-dir';
  const pid = own ? runningPid(upPidFile(config.dataDir), 'trendgen') : undefined;
  if (pid) throw new RestoreRefusedError(`trendgen up runs on ${config.dataDir} (pid ${pid}): ${alongside}.`);
  const databases = new Set<string>();
  if (parts.includes('postgres') && dest.databaseUrl) databases.add(dest.databaseUrl);
  const serviceUrl = config.databaseUrl ?? embeddedPostgres(config).findRunning()?.url;
  if (own && serviceUrl) databases.add(serviceUrl);
  for (const url of databases) {
    const found = await serviceConnections(url).catch(() => undefined);
    if (found?.count)
      throw new RestoreRefusedError(
        `The service is running on the database ${found.database} (${found.count} connections of trendgen serve, worker or scheduler): ${alongside}.`,
      );
  }
}

/**
 * `trendgen restore --accept-partial`: what an unfinished restore left in the service's places (or in
 * --to-database/--to-dir) is accepted as their data, and its marks are cleared so `up` serves it.
 */
export async function acceptPartialRestore(
  config: Config,
  request: { toDatabase?: string; toDir?: string },
): Promise<{ snapshot: string; where: string[]; objectsMissing: number } | undefined> {
  const services = await connectServices(config, { postgres: !request.toDatabase, redis: !request.toDir });
  try {
    const dest = {
      databaseUrl: request.toDatabase ?? services.databaseUrl,
      redisUrl: request.toDir ? '' : services.redisUrl,
      promptsDir: request.toDir ? path.resolve(request.toDir, 'prompts') : config.promptsDir,
    };
    const unfinished = await unfinishedRestore(dest);
    if (!unfinished) return undefined;
    // Objects and the database restore side by side: rows whose object never arrived are marked purged
    // before the marks go, so what is served has no row referring to a missing object (I2).
    const objectsMissing = unfinished.where.includes('the database')
      ? await purgeMissingObjects(dest.databaseUrl, restoredObjectStore(config, request.toDir))
      : 0;
    await clearMarks(dest);
    return { ...unfinished, objectsMissing };
  } finally {
    await services.release();
  }
}

/** Rows of the database whose object the store lacks or holds cut short, marked purged; how many. */
async function purgeMissingObjects(databaseUrl: string, store: BlobStore): Promise<number> {
  const sql = openDatabase(databaseUrl, { max: 1, writable: true });
  try {
    const [present] = await sql`select to_regclass('objects') is not null as ok`;
    if (!present?.ok) return 0;
    const missing: string[] = [];
    // A size other than the row's: a file the killed restore was still writing.
    for (const object of await liveObjects(sql))
      if ((await store.head(object.key))?.size !== object.size) missing.push(object.key);
    return await markPurged(sql, missing);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * A place an unfinished restore left marked holds neither the live data nor the snapshot: the service never
 * serves it (`up`, and `serve` on its own). One sentence says how to finish the restore or keep what it left.
 */
export async function refuseUnfinishedRestore(dest: {
  databaseUrl: string;
  redisUrl: string;
  promptsDir: string;
}): Promise<void> {
  const unfinished = await unfinishedRestore(dest);
  if (!unfinished) return;
  const id = unfinished.snapshot.slice(0, 12);
  throw new RestoreRefusedError(
    `A restore of snapshot ${id} did not finish (${unfinished.where.join(', ')} still carry its mark), so nothing is served: finish it with trendgen restore ${id}, or serve what it left with trendgen restore --accept-partial.`,
  );
}
