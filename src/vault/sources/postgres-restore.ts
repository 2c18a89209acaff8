import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { readAll } from '../../blobstore/blobstore.ts';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import { databaseOf } from '../../lib/connection-url.ts';
import { fileContents } from '../repository/index.ts';
import { type BinaryType, binaryToText } from './copy-binary.ts';
import { dropAndRecreateDatabase, isDatabaseEmpty } from './postgres-admin.ts';
import { run } from './postgres-client.ts';
import { loadRangeFiles } from './postgres-copy-lanes.ts';
import { serveFiles } from './postgres-dump-feed.ts';
import { verifyPostgres } from './postgres-facts.ts';
import type { Loader } from './postgres-loader.ts';
import {
  copyFromStatement,
  parseRangeManifest,
  readRangeManifest,
  TABLE_DATA_MANIFEST,
} from './postgres-ranges.ts';
import { loadOnWorker, pgRestore } from './postgres-stream-load.ts';
import { type PostgresFacts, type RestoreContext, RestoreVerificationError } from './types.ts';

/**
 * A snapshot's database brought back into an empty database and verified table by table against the facts
 * recorded at backup time (I7). Loaded on a worker thread by COPY on two connections (postgres-stream-load.ts),
 * or by pg_restore for an archive that loader leaves alone. Into an empty database the dump streams from the
 * repository; in place it is read back into scratch first, so a database is dropped only once the whole backup
 * has proved readable.
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
  // Into an empty database the dump streams from the repository; a damaged blob stops the load, and the
  // database, still marked (restore-markers.ts), is replaced by the next restore.
  if (ctx.clear || !(await loadFromRepository(ctx, databaseUrl, loader, dumpDir))) {
    // Scratch: read at once and removed with the scratch folder; a crash restores it again. In place, this also
    // reads (and so verifies) the whole dump before the database it replaces is dropped.
    await ctx.repo.restoreTree(ctx.tree, dumpDir, { durable: false });
    if (ctx.clear) {
      await dropAndRecreateDatabase(databaseUrl);
      await ctx.cleared();
    }
    await refuseNonEmpty(databaseUrl);
    await loader.prepare();
    await loadDump(dumpDir, loader, RESTORE_JOBS);
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

/**
 * Loads the snapshot's dump with no copy of it on disk: the main thread reads the archive and the range files
 * from the repository and serves them to the loading thread (postgres-dump-feed.ts). False, having written
 * nothing, for a dump the stream loader leaves to pg_restore (those go through scratch).
 */
async function loadFromRepository(
  ctx: RestoreContext<PostgresFacts>,
  databaseUrl: string,
  loader: Loader,
  scratch: string,
): Promise<boolean> {
  const entries = new Map((await ctx.repo.readTree(ctx.tree)).entries.map((entry) => [entry.name, entry]));
  const archive = entries.get(DUMP_ARCHIVE);
  if (archive?.type !== 'file') return false;
  const read = (name: string) => {
    const entry = entries.get(name);
    return entry?.type === 'file' ? fileContents(ctx.repo, entry, `postgres/${name}`) : undefined;
  };
  const manifest = read(TABLE_DATA_MANIFEST);
  const ranges = manifest ? parseRangeManifest((await readAll(manifest)).toString('utf8')) : undefined;
  await refuseNonEmpty(databaseUrl);
  await loader.prepare();
  await mkdir(scratch, { recursive: true });
  const feed = serveFiles(read);
  const result = await loadOnWorker({ feed }, DUMP_ARCHIVE, loader, scratch, { jobs: RESTORE_JOBS, ranges });
  return result.loaded;
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
 * Loads a dump folder into an empty database: the archive streamed into COPY on a worker thread
 * (postgres-stream-load.ts), its table ranges too; an archive that loader leaves alone goes to pg_restore, with
 * the ranges loaded between its data and its indexes and constraints. Stops at the first error.
 */
async function loadDump(dumpDir: string, loader: Pick<Loader, 'url' | 'role'>, jobs: number): Promise<void> {
  const archive = path.join(dumpDir, DUMP_ARCHIVE);
  const ranges = await readRangeManifest(dumpDir);
  // Snapshots taken before the dump was streamed hold a directory-format dump: pg_restore reads those.
  const files = { dir: dumpDir };
  if (
    existsSync(archive) &&
    (await loadOnWorker(files, DUMP_ARCHIVE, loader, dumpDir, { jobs, ranges })).loaded
  )
    return;
  if (!ranges) {
    await pgRestore(loader, [`--jobs=${jobs}`, dumpArchiveIn(dumpDir)]);
    return;
  }
  await pgRestore(loader, [`--jobs=${jobs}`, '--section=pre-data', '--section=data', archive]);
  await loadRangeFiles(ranges, dumpDir, loader, jobs);
  await pgRestore(loader, [`--jobs=${jobs}`, '--section=post-data', archive]);
}

/**
 * Restores a dump folder into an existing, empty database, in parallel; stops at the first error. The dump is
 * loaded as `loader` (postgres-loader.ts), never as a role that could reach the database host.
 */
export async function restorePostgres(
  dumpDir: string,
  targetUrl: string,
  loader: Pick<Loader, 'url' | 'role'>,
  options: { jobs?: number } = {},
): Promise<void> {
  dumpArchiveIn(dumpDir); // a folder with no dump is refused before the database is looked at
  await refuseNonEmpty(targetUrl);
  await loadDump(dumpDir, loader, options.jobs ?? RESTORE_JOBS);
}

/**
 * The dump as one plain SQL script (for the classic export), loadable with `psql -f` by any owner: the table
 * ranges' rows as COPY blocks after the archive's own data, before its indexes and constraints.
 */
export async function dumpToSql(dumpDir: string, outFile: string): Promise<void> {
  const archive = dumpArchiveIn(dumpDir);
  const ranges = await readRangeManifest(dumpDir);
  const sections = async (file: string, only: string[]) => {
    const args = ['--no-owner', '--no-acl', ...only, `--file=${file}`, archive];
    await run(findPostgresBinary('pg_restore'), args, process.env, '').done;
  };
  if (!ranges) return await sections(outFile, []);
  const tail = `${outFile}.post-data`;
  try {
    await sections(outFile, ['--section=pre-data', '--section=data']);
    await sections(tail, ['--section=post-data']);
    const out = await open(outFile, 'a');
    try {
      const copy = async (file: string, types?: BinaryType[]) => {
        const read = createReadStream(file) as AsyncIterable<Buffer>;
        for await (const chunk of types ? binaryToText(read, types) : read) await out.write(chunk);
      };
      for (const table of ranges.tables) {
        await out.write(`\n${copyFromStatement(table).replace(/ STDIN$/, ' stdin')};\n`);
        // A script carries COPY text: binary range files are written as text on the way.
        for (const file of table.files) await copy(path.join(dumpDir, file), table.types);
        await out.write('\\.\n\n');
      }
      await copy(tail);
    } finally {
      await out.close();
    }
  } finally {
    await rm(tail, { force: true });
  }
}
