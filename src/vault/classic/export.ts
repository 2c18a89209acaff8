import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { fsyncDir } from '../../lib/files.ts';
import type { Repository, Snapshot } from '../repository/index.ts';
import { dumpToSql } from '../sources/postgres-restore.ts';
import { writeTarGzByContent } from './data-archive.ts';
import {
  classicName,
  DATA_MEMBER,
  EXAMPLES_FOLDER,
  flattenObjects,
  GENERATED_FOLDER,
  PROMPTS_FOLDER,
  SQL_MEMBER,
} from './format.ts';

/** Writes a plain SQL file from a snapshot's pg_dump archive (`dumpToSql` in sources/postgres.ts). */
export type SqlFromDump = (dumpDir: string, outFile: string) => Promise<unknown>;

export interface ExportOptions {
  /** Default: dumpToSql (pg_restore -f, without owners and privileges, so any role can load it). */
  sqlFromDump?: SqlFromDump;
}

export interface ExportResult {
  /** The archive written. */
  file: string;
  /** `trend_generator_backup_YYYYMMDD_HHMMSS`: the folder inside it. */
  name: string;
  /** Bytes of plain SQL in db.sql.gz. */
  sqlBytes: number;
  /** Regular files in data.tar.gz. */
  files: number;
  /** Size of the archive. */
  bytes: number;
}

/** gzip's default: plain SQL shrinks several times over at tens of MB/s. */
const SQL_GZIP_LEVEL = 6;

/**
 * Writes a snapshot as a classic backup archive (see classic.ts for the layout and the mapping). outFile
 * is the archive's path, or an existing folder to write `trend_generator_backup_<UTC time>.tar.gz` into.
 * The archive appears whole or not at all (temp file, fsync, rename, folder fsync); scratch space is a
 * temporary folder beside it, removed at the end, and needs room for the SQL and the data once more.
 */
export async function exportClassic(
  repo: Repository,
  snapshotId: string,
  outFile: string,
  options: ExportOptions = {},
): Promise<ExportResult> {
  const snapshot = await repo.loadSnapshot(snapshotId);
  const name = classicName(new Date(snapshot.time));
  const intoFolder = outFile.endsWith('/') || (await isDirectory(outFile));
  const file = intoFolder ? path.join(path.resolve(outFile), `${name}.tar.gz`) : path.resolve(outFile);
  const outDir = path.dirname(file);
  await mkdir(outDir, { recursive: true });
  // Beside the archive, not in /tmp: often a small tmpfs, and the final rename must not cross filesystems.
  const work = await mkdtemp(path.join(outDir, '.trendgen-export-'));
  // Shared, like every reader: a prune must not delete the blobs being read.
  const lock = await repo.lock({ exclusive: false });
  try {
    const folder = path.join(work, name);
    await mkdir(folder);
    const sqlBytes = await writeSql(
      repo,
      snapshot,
      work,
      path.join(folder, SQL_MEMBER),
      options.sqlFromDump ?? dumpToSql,
    );
    const files = await writeData(repo, snapshot, work, path.join(folder, DATA_MEMBER));
    // Its two members are gzip files already, so the writer stores them (level 0) rather than deflate
    // them again for nothing; still a valid gzip stream for `tar -xzf`.
    const bytes = await writeAtomically(file, async (temp) => {
      await writeTarGzByContent(work, [name], temp);
    });
    return { file, name, sqlBytes, files, bytes };
  } finally {
    await lock.release().catch(() => {});
    await rm(work, { recursive: true, force: true });
  }
}

/** db.sql.gz from the snapshot's pg_dump archive, or from the plain SQL an import stored. */
async function writeSql(
  repo: Repository,
  snapshot: Snapshot,
  work: string,
  target: string,
  sqlFromDump: SqlFromDump,
): Promise<number> {
  const { postgres, classic_sql: classicSql } = snapshot.trees;
  let sqlFile: string;
  if (postgres) {
    const dumpDir = path.join(work, 'pg-dump');
    await repo.restoreTree(postgres, dumpDir);
    sqlFile = path.join(work, 'db.sql');
    await sqlFromDump(dumpDir, sqlFile);
    // The dump is not needed again: free its space before the data is staged.
    await rm(dumpDir, { recursive: true, force: true });
  } else if (classicSql) {
    const sqlDir = path.join(work, 'classic-sql');
    await repo.restoreTree(classicSql, sqlDir);
    sqlFile = path.join(sqlDir, 'db.sql');
  } else {
    throw new Error(
      `Snapshot ${snapshot.id} holds no PostgreSQL dump, so it cannot be exported as a classic backup.`,
    );
  }
  const sqlBytes = (await stat(sqlFile)).size;
  await pipeline(
    createReadStream(sqlFile),
    createGzip({ level: SQL_GZIP_LEVEL, chunkSize: 1024 * 1024 }),
    createWriteStream(target),
  );
  await unlink(sqlFile);
  return sqlBytes;
}

/** data.tar.gz: prompts/, data/trend_examples/, data/generated_images/ (always present, maybe empty). */
async function writeData(
  repo: Repository,
  snapshot: Snapshot,
  work: string,
  target: string,
): Promise<number> {
  const { prompts, objects, classic_data: classicData } = snapshot.trees;
  const stage = path.join(work, 'project');
  if (classicData) {
    await repo.restoreTree(classicData, stage);
  } else {
    if (prompts) await repo.restoreTree(prompts, path.join(stage, PROMPTS_FOLDER));
    if (objects) {
      const objectsDir = path.join(work, 'objects');
      await repo.restoreTree(objects, objectsDir);
      await flattenObjects(objectsDir, stage);
    }
  }
  for (const folder of [PROMPTS_FOLDER, EXAMPLES_FOLDER, GENERATED_FOLDER]) {
    await mkdir(path.join(stage, folder), { recursive: true });
  }
  return await writeTarGzByContent(stage, (await readdir(stage)).sort(), target);
}

/** Runs write(temp), then fsyncs and renames temp onto file; returns the file's size. */
async function writeAtomically(file: string, write: (temp: string) => Promise<void>): Promise<number> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await write(temp);
    const handle = await open(temp, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await fsyncDir(path.dirname(file));
  return (await stat(file)).size;
}

async function isDirectory(candidate: string): Promise<boolean> {
  try {
    return (await stat(candidate)).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
