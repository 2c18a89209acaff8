import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import { parseConnectionUrl } from '../../lib/connection-url.ts';
import type { Repository, Snapshot } from '../repository/index.ts';
import { libpqConnection } from '../sources/postgres.ts';
import { isDatabaseEmpty } from '../sources/postgres-admin.ts';

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

/** psql's last words are kept for the error message; a dump's full output could be huge. */
const STDERR_TAIL = 4096;

/**
 * Restores a snapshot made by importClassic: loads its db.sql with
 * `psql -X -v ON_ERROR_STOP=1 --single-transaction -f db.sql`, then restores its data tree into toDir.
 *
 * The database must be empty (a classic dump, pg_dump without --clean, creates its tables): a database
 * with tables is refused before anything runs, and the caller recreates it when the operator asked to
 * restore in place. One transaction: the first error rolls everything back, so a failed load leaves the
 * database empty again. Ownership statements in the dump (`ALTER … OWNER TO trends` from the old
 * `pg_dump -U trends`) need that role on the target; psql's error names it otherwise. The password goes
 * through PGPASSWORD, never the command line (which `ps` shows).
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
  const lock = await repo.lock({ exclusive: false });
  try {
    if (options.databaseUrl) {
      const work = await mkdtemp(path.join(options.workDir ?? os.tmpdir(), 'trendgen-classic-sql-'));
      try {
        await repo.restoreTree(sqlTree, work);
        const sqlFile = path.join(work, 'db.sql');
        result.sqlBytes = (await stat(sqlFile)).size;
        await loadSql(options.psql ?? findPostgresBinary('psql'), options.databaseUrl, sqlFile);
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
  }
  return result;
}

/** Runs psql on a SQL file; rejects with psql's last error lines (password scrubbed) when it fails. */
export async function loadSql(psql: string, databaseUrl: string, sqlFile: string): Promise<void> {
  const conn = libpqConnection(databaseUrl);
  const args = [
    '-X',
    '-q',
    '-v',
    'ON_ERROR_STOP=1',
    '--single-transaction',
    '--no-password',
    '-d',
    conn.dbname,
    '-f',
    sqlFile,
  ];
  const child = spawn(psql, args, { env: conn.env, stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    tail = (tail + text).slice(-STDERR_TAIL);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) {
    let said = tail.trim().split('\n').slice(-3).join(' ').replace(/\s+/g, ' ') || `exit code ${code}`;
    if (conn.password) said = said.replaceAll(conn.password, '***');
    throw new Error(`psql could not load the classic dump into ${databaseName(databaseUrl)}: ${said}`);
  }
}

function databaseName(url: string): string {
  const parsed = parseConnectionUrl(url, { multiHost: true });
  return `${parsed.hosts.join(',')}${parsed.path}`;
}
