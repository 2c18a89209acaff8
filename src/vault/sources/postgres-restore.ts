import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import { databaseOf } from '../../lib/connection-url.ts';
import { readBlobsAhead } from '../repository/read-ahead.ts';
import { dropAndRecreateDatabase, isDatabaseEmpty } from './postgres-admin.ts';
import { run } from './postgres-client.ts';
import { verifyPostgres } from './postgres-facts.ts';
import type { Loader } from './postgres-loader.ts';
import { loadStreamed, pgRestore } from './postgres-stream-load.ts';
import { type PostgresFacts, type RestoreContext, RestoreVerificationError } from './types.ts';

/**
 * A snapshot's database brought back into an empty database and verified table by table against the facts
 * recorded at backup time (I7). The dump streams from the repository into the database (postgres-stream-load.ts)
 * unless the restore replaces a database: then the whole dump is first read back, and so verified, before
 * that database is dropped, so a damaged backup leaves it as it was.
 */

/** The one file of a snapshot's postgres tree: a pg_dump custom-format archive, uncompressed. */
export const DUMP_ARCHIVE = 'database.pgdump';

/** Connections that load at once: a restore shares the machine with the objects it writes meanwhile. */
const RESTORE_JOBS = 2;

/** Blobs of the dump read and decoded ahead of the one being loaded. */
const READ_AHEAD = 4;

export async function restoreDatabase(
  ctx: RestoreContext<PostgresFacts>,
  databaseUrl: string,
  loader: Loader | undefined,
): Promise<Record<string, unknown>> {
  ctx.progress('postgres', 'restoring');
  if (!loader) throw new Error('A PostgreSQL restore needs its unprivileged loader.');
  const dumpDir = path.join(ctx.scratch, 'postgres');
  await mkdir(dumpDir, { recursive: true });
  const streamed = !ctx.clear && (await restoreStreamed(ctx, databaseUrl, loader, dumpDir));
  if (!streamed) {
    // Scratch: pg_restore reads it at once and a crash restores it again.
    await ctx.repo.restoreTree(ctx.tree, dumpDir, { durable: false });
    if (ctx.clear) {
      await dropAndRecreateDatabase(databaseUrl);
      await ctx.cleared();
    }
    await loader.prepare();
    await restorePostgres(dumpDir, databaseUrl, loader, { jobs: RESTORE_JOBS });
  }
  ctx.progress('postgres', 'verifying');
  // The facts were checked before anything was written (restore.ts): a restore is verified or refused.
  const verdict = await verifyPostgres(databaseUrl, ctx.facts!);
  if (!verdict.ok) {
    throw new RestoreVerificationError(
      `The restored database differs from the backup in ${verdict.mismatches.map((m) => m.table).join(', ')}.`,
    );
  }
  return { tables: Object.keys(ctx.facts!.tables).length, verified: true };
}

/** Streams the snapshot's dump into the database; false, with nothing written, for a dump left to pg_restore. */
async function restoreStreamed(
  ctx: RestoreContext<PostgresFacts>,
  databaseUrl: string,
  loader: Loader,
  scratch: string,
): Promise<boolean> {
  const tree = await ctx.repo.readTree(ctx.tree);
  const archive = tree.entries.find((entry) => entry.name === DUMP_ARCHIVE && entry.type === 'file');
  // Snapshots taken before the dump was streamed hold a directory-format dump: pg_restore reads those.
  if (!archive) return false;
  await refuseNonEmpty(databaseUrl);
  await loader.prepare();
  const blobs = readBlobsAhead(ctx.repo, archive.chunks ?? [], READ_AHEAD);
  try {
    const result = await loadStreamed(blobs, loader, scratch, { jobs: RESTORE_JOBS });
    return result.loaded;
  } finally {
    await blobs.return(undefined);
  }
}

async function refuseNonEmpty(targetUrl: string): Promise<void> {
  if (!(await isDatabaseEmpty(targetUrl))) {
    throw new Error(
      `The database ${databaseOf(targetUrl)} is not empty: restore into an empty one or recreate it first.`,
    );
  }
}

/**
 * Where pg_restore reads a restored postgres tree: its custom-format archive, or the folder itself for
 * snapshots taken before the dump was streamed (a `--format=directory` dump with its toc.dat).
 */
function dumpArchiveIn(dumpDir: string): string {
  const archive = path.join(dumpDir, DUMP_ARCHIVE);
  if (existsSync(archive)) return archive;
  if (existsSync(path.join(dumpDir, 'toc.dat'))) return dumpDir;
  throw new Error(
    `${dumpDir} holds no PostgreSQL dump (neither ${DUMP_ARCHIVE} nor a directory dump's toc.dat).`,
  );
}

/**
 * Restores a dump (dumpArchiveIn) into an existing, empty database, in parallel; stops at the first error. The
 * dump is loaded as `loader` (postgres-loader.ts), never as a role that could reach the database host.
 */
export async function restorePostgres(
  dumpDir: string,
  targetUrl: string,
  loader: Pick<Loader, 'url' | 'role'>,
  options: { jobs?: number } = {},
): Promise<void> {
  const archive = dumpArchiveIn(dumpDir);
  await refuseNonEmpty(targetUrl);
  await pgRestore(loader, [`--jobs=${options.jobs ?? RESTORE_JOBS}`, archive]);
}

/** The dump as one plain SQL script (for the classic export), loadable with `psql -f` by any owner. */
export async function dumpToSql(dumpDir: string, outFile: string): Promise<void> {
  const args = ['--no-owner', '--no-acl', `--file=${outFile}`, dumpArchiveIn(dumpDir)];
  await run(findPostgresBinary('pg_restore'), args, process.env, '').done;
}
