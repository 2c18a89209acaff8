import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import { parseConnectionUrl } from '../../lib/connection-url.ts';
import type { Repository, Snapshot } from '../repository/index.ts';
import { isDatabaseEmpty } from '../sources/postgres-admin.ts';
import { openLoader } from '../sources/postgres-loader.ts';
import { assertPsqlRestricts, loadClassicSql } from './load-sql.ts';

export interface ClassicRestoreOptions {
  /** Database to load db.sql into; must be empty. Left out: no database is touched. */
  databaseUrl?: string;
  /** Folder to restore prompts/ and data/… into (a project root). Left out: no files are written. */
  toDir?: string;
  /** The psql program; default findPostgresBinary('psql'). */
  psql?: string;
  /** Scratch space for db.sql; default the system's temp folder. */
  workDir?: string;
}

export interface ClassicRestoreResult {
  /** Bytes of SQL loaded; 0 when no database was given. */
  sqlBytes: number;
  files: number;
  bytes: number;
}

/**
 * Restores a snapshot made by importClassic: loads its db.sql with psql restricted to SQL, as the restore's
 * unprivileged loader (load-sql.ts says why both), then restores its data tree into toDir.
 *
 * The database must be empty (a classic dump, pg_dump without --clean, creates its tables): a database
 * with tables is refused before anything runs, and the caller recreates it when the operator asked to
 * restore in place. So is a psql without `\restrict`, and a privileged role the loader cannot step down
 * from. One transaction: the first error rolls everything back, so a failed load leaves the database empty
 * again, and nothing is written to toDir. The dump's ownership statements are skipped: what it creates is
 * owned by the target URL's role when that role is unprivileged, else by `trendgen_restored`.
 */
export async function restoreClassicSnapshot(
  repo: Repository,
  snapshot: Snapshot | string,
  options: ClassicRestoreOptions,
): Promise<ClassicRestoreResult> {
  const snap = typeof snapshot === 'string' ? await repo.loadSnapshot(snapshot) : snapshot;
  const { classic_sql: sqlTree, classic_data: dataTree } = snap.trees;
  if (!sqlTree || !dataTree) {
    throw new Error(
      `Snapshot ${snap.id} is not an imported classic backup: it has no classic_sql and classic_data.`,
    );
  }
  const result: ClassicRestoreResult = { sqlBytes: 0, files: 0, bytes: 0 };
  if (options.databaseUrl && !(await isDatabaseEmpty(options.databaseUrl))) {
    throw new Error(
      `The database ${databaseName(options.databaseUrl)} is not empty: restore the classic dump into an empty one or recreate it first.`,
    );
  }
  const psql = options.psql ?? findPostgresBinary('psql');
  if (options.databaseUrl) assertPsqlRestricts(psql);
  // Before anything is written: a role that could reach the database host is refused here.
  const loader = options.databaseUrl ? await openLoader(options.databaseUrl) : undefined;
  const lock = await repo.lock({ exclusive: false }).catch(async (error: unknown) => {
    await loader?.release().catch(() => {});
    throw error;
  });
  try {
    if (options.databaseUrl && loader) {
      const work = await mkdtemp(path.join(options.workDir ?? os.tmpdir(), 'trendgen-classic-sql-'));
      try {
        await repo.restoreTree(sqlTree, work);
        const sqlFile = path.join(work, 'db.sql');
        result.sqlBytes = (await stat(sqlFile)).size;
        await loader.prepare();
        await loadClassicSql(psql, options.databaseUrl, loader, sqlFile);
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    }
    if (options.toDir) {
      const restored = await repo.restoreTree(dataTree, options.toDir);
      result.files = restored.files;
      result.bytes = restored.bytes;
    }
  } finally {
    await lock.release().catch(() => {});
    await loader?.release().catch(() => {});
  }
  return result;
}

function databaseName(url: string): string {
  const parsed = parseConnectionUrl(url, { multiHost: true });
  return `${parsed.hosts.join(',')}${parsed.path}`;
}
