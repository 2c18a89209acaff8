import { existsSync } from 'node:fs';
import path from 'node:path';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import { databaseOf } from '../../lib/connection-url.ts';
import { dropAndRecreateDatabase, isDatabaseEmpty } from './postgres-admin.ts';
import { run } from './postgres-client.ts';
import { verifyPostgres } from './postgres-facts.ts';
import type { Loader } from './postgres-loader.ts';
import { loadFileOnWorker, pgRestore } from './postgres-stream-load.ts';
import { type PostgresFacts, type RestoreContext, RestoreVerificationError } from './types.ts';

/**
 * A snapshot's database brought back into an empty database and verified table by table against the facts
 * recorded at backup time (I7). The dump is read back into scratch first (so a restore that replaces a database
 * drops it only once the whole backup has proved readable), then loaded on a worker thread by COPY on two
 * connections (postgres-stream-load.ts), or by pg_restore for an archive that loader leaves alone.
 */

/** The one file of a snapshot's postgres tree: a pg_dump custom-format archive, uncompressed. */
export const DUMP_ARCHIVE = 'database.pgdump';

/** Connections that load at once: a restore shares the machine with the objects it writes meanwhile. */
const RESTORE_JOBS = 2;

export async function restoreDatabase(
  ctx: RestoreContext<PostgresFacts>,
  databaseUrl: string,
  loader: Loader | undefined,
): Promise<Record<string, unknown>> {
  ctx.progress('postgres', 'restoring');
  if (!loader) throw new Error('A PostgreSQL restore needs its unprivileged loader.');
  const dumpDir = path.join(ctx.scratch, 'postgres');
  // Scratch: read at once and removed with the scratch folder; a crash restores it again. In place, this also
  // reads (and so verifies) the whole dump before the database it replaces is dropped.
  await ctx.repo.restoreTree(ctx.tree, dumpDir, { durable: false });
  if (ctx.clear) {
    await dropAndRecreateDatabase(databaseUrl);
    await ctx.cleared();
  }
  await refuseNonEmpty(databaseUrl);
  await loader.prepare();
  const archive = path.join(dumpDir, DUMP_ARCHIVE);
  // Snapshots taken before the dump was streamed hold a directory-format dump: pg_restore reads those.
  const loaded =
    existsSync(archive) && (await loadFileOnWorker(archive, loader, dumpDir, RESTORE_JOBS)).loaded;
  if (!loaded) await pgRestore(loader, [`--jobs=${RESTORE_JOBS}`, dumpArchiveIn(dumpDir)]);
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
