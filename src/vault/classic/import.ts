import { createReadStream } from 'node:fs';
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Repository } from '../repository/index.ts';
import { CLASSIC_PREFIX, DATA_MEMBER, parseClassicName, SQL_MEMBER } from './format.ts';
import {
  DamagedArchiveError,
  type ExtractLimits,
  extractTarGzSafely,
  UnsafeArchiveError,
} from './safe-extract.ts';

export interface ImportOptions extends ExtractLimits {
  /** Added to the tag `imported`. */
  tags?: string[];
  /** Recorded as the snapshot's host; default this machine's name. */
  host?: string;
  /** Where the archive is unpacked for the import (removed after); default the system's temp folder. */
  workDir?: string;
}

/** The facts an imported snapshot records (`facts.classic`). */
export interface ClassicFacts {
  /** Bytes of plain SQL in db.sql. */
  sqlBytes: number;
  /** Regular files in data.tar.gz. */
  files: number;
  /** Bytes of those files. */
  dataBytes: number;
}

/** The archive is well-formed but is not a classic backup. */
export class NotClassicBackupError extends Error {
  override name = 'NotClassicBackupError';
}

/**
 * Brings a classic backup into the repository as one snapshot: `db.sql` (gunzipped) as the tree
 * `classic_sql`, the unpacked data.tar.gz (prompts/, data/…) as the tree `classic_data`, tagged
 * `imported`, timed by the archive's name. Both tar layers are unpacked with extractTarGzSafely, so a
 * hostile archive is refused before anything lands outside the scratch folder. Returns the snapshot id.
 */
export async function importClassic(
  repo: Repository,
  file: string,
  options: ImportOptions = {},
): Promise<string> {
  const archive = path.basename(file);
  const time = parseClassicName(archive);
  if (!archive.endsWith('.tar.gz') || !time) {
    throw new NotClassicBackupError(
      `${archive} is not a classic backup: its name does not have the form ${CLASSIC_PREFIX}YYYYMMDD_HHMMSS.tar.gz.`,
    );
  }
  const limits: ExtractLimits = {};
  if (options.maxBytes !== undefined) limits.maxBytes = options.maxBytes;
  if (options.maxEntries !== undefined) limits.maxEntries = options.maxEntries;
  const work = await mkdtemp(path.join(options.workDir ?? os.tmpdir(), 'trendgen-import-'));
  try {
    const outer = path.join(work, 'archive');
    await extractTarGzSafely(file, outer, limits);
    const folder = await findClassicFolder(outer, archive);
    const data = path.join(work, 'data');
    const extracted = await extractTarGzSafely(path.join(outer, folder, DATA_MEMBER), data, limits);
    // Shared, like a backup: a prune must wait until the snapshot that keeps these blobs is written.
    const lock = await repo.lock({ exclusive: false });
    try {
      const sqlPath = path.join(outer, folder, SQL_MEMBER);
      const sql = await storeSql(repo, sqlPath, `${folder}/${SQL_MEMBER}`, file, limits.maxBytes);
      const stored = await repo.storeDirectory(data);
      const facts: ClassicFacts = { sqlBytes: sql.size, files: extracted.files, dataBytes: extracted.bytes };
      lock.assertHeld();
      return await repo.saveSnapshot({
        time: time.toISOString(),
        host: options.host ?? os.hostname(),
        tags: ['imported', ...(options.tags ?? []).filter((tag) => tag !== 'imported')],
        trees: { classic_sql: sql.treeId, classic_data: stored.treeId },
        facts: { classic: facts },
        importedFrom: archive,
      });
    } finally {
      await lock.release().catch(() => {});
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The folder holding db.sql.gz and data.tar.gz: the one named like the archive, or else the only
 * classic-named folder (the archive was renamed after it was made).
 */
async function findClassicFolder(outer: string, archive: string): Promise<string> {
  const top = await readdir(outer, { withFileTypes: true });
  const named = archive.replace(/\.tar\.gz$/, '');
  const candidates = top.filter((entry) => entry.isDirectory() && parseClassicName(entry.name));
  const folder =
    candidates.find((entry) => entry.name === named) ?? (candidates.length === 1 ? candidates[0] : undefined);
  if (folder) {
    const members = await Promise.all(
      [SQL_MEMBER, DATA_MEMBER].map(async (member) => {
        const info = await lstat(path.join(outer, folder.name, member)).catch(() => undefined);
        return info?.isFile() ? member : undefined;
      }),
    );
    if (members.every(Boolean)) return folder.name;
  }
  const found = top.map((entry) => entry.name + (entry.isDirectory() ? '/' : '')).join(', ') || 'nothing';
  throw new NotClassicBackupError(
    `${archive} is not a classic backup: it should hold ${named}/${SQL_MEMBER} and ${named}/${DATA_MEMBER}, ` +
      `and holds ${found}.`,
  );
}

/** Gunzips db.sql.gz straight into the repository (no plain copy on disk) and writes its tree. */
async function storeSql(
  repo: Repository,
  gzFile: string,
  member: string,
  archive: string,
  maxBytes: number | undefined,
): Promise<{ treeId: string; size: number }> {
  const info = await lstat(gzFile);
  let stored: Awaited<ReturnType<Repository['storeFile']>>;
  try {
    // pipeline forwards a read error into the gunzip stream, where the iteration below sees it.
    const gunzip = pipeline(createReadStream(gzFile), createGunzip(), () => {});
    stored = await repo.storeFile(limited(gunzip, maxBytes, archive, member));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR') {
      throw new DamagedArchiveError(archive, `${member} is not valid gzip (${(error as Error).message})`);
    }
    throw error;
  }
  const treeId = await repo.writeTree([
    {
      name: 'db.sql',
      type: 'file',
      mode: 0o644,
      mtimeMs: info.mtimeMs,
      size: stored.size,
      chunks: stored.chunks,
    },
  ]);
  return { treeId, size: stored.size };
}

/** A gzip bomb in db.sql.gz stops at maxBytes like one in a tar. */
async function* limited(
  source: AsyncIterable<Buffer>,
  maxBytes: number | undefined,
  archive: string,
  member: string,
): AsyncIterable<Buffer> {
  let seen = 0;
  for await (const chunk of source) {
    seen += chunk.length;
    if (maxBytes !== undefined && seen > maxBytes) {
      throw new UnsafeArchiveError(archive, member, `expands past the limit of ${maxBytes} bytes`);
    }
    yield chunk;
  }
}

// Restoring what importClassic stored lives beside it; re-exported so import.ts offers both directions.
export { type ClassicRestoreOptions, restoreClassicSnapshot } from './restore.ts';
