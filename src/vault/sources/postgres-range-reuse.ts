import { readAll } from '../../blobstore/blobstore.ts';
import type { TransactionSql } from '../../db/connection.ts';
import { fileContents, type Repository, type StoredFile } from '../repository/index.ts';
import { everyChunkPresent } from './objects.ts';
import { digestRows, hex64, type RowsDigest, type TableDigest } from './postgres-facts.ts';
import {
  type PlannedRange,
  parseRangeManifest,
  RANGE_TEXT_FORMAT,
  type RangeFingerprint,
  TABLE_DATA_MANIFEST,
  type TableDataManifest,
} from './postgres-ranges.ts';

/**
 * A second backup of a large table reads only the ranges whose rows changed. Each range's rows are fingerprinted
 * in the dump's snapshot (their count, their digest by the table's facts method, and the sum of hash(ctid, xmin)):
 * an insert or an update gives its row a new xmin, a delete removes one, and rows moved by VACUUM FULL or CLUSTER
 * change the ranges' digests. A range whose fingerprint equals the parent snapshot's for the same table, columns,
 * first block, server version, encoding and text format holds the same rows, so the parent's range file is taken
 * as it is, with no COPY and no byte read (I2). A restore still proves every table against the facts taken now
 * (I7): a range taken wrongly would fail that proof rather than restore stale rows silently.
 */

/** The parent dump's range manifest and the range files of it that can be taken again, by file name. */
export interface PreviousRanges<T> {
  manifest: TableDataManifest;
  files: ReadonlyMap<string, T>;
}

/** A dump file as the repository holds it: what the postgres source's tree and statistics need. */
export type DumpedBlobs = Pick<StoredFile, 'chunks' | 'size' | 'blobsAdded' | 'bytesAdded'>;

export type RangeFacts = Map<PlannedRange, RangeFingerprint & { sum: bigint }>;

/** Every range's fingerprint, one TID range scan each, in the transaction's snapshot. */
export async function fingerprintRanges(
  tx: TransactionSql,
  ranges: readonly PlannedRange[],
  digests: readonly TableDigest[],
): Promise<RangeFacts> {
  const byTable = new Map(digests.map((digest) => [digest.table, digest]));
  const facts: RangeFacts = new Map();
  for (const range of ranges) {
    const digest = byTable.get(`${range.table.schema}.${range.table.name}`);
    if (!digest) throw new Error(`Table ${range.table.schema}.${range.table.name} has no digest method.`);
    const to = range.to === undefined ? '' : ` and r.ctid < '(${range.to},0)'::tid`;
    const rows = await digestRows(tx, digest, {
      where: `r.ctid >= '(${range.from},0)'::tid${to}`,
      versions: true,
    });
    facts.set(range, {
      from: range.from,
      rows: rows.rows,
      digest: hex64(rows.sum),
      versions: hex64(rows.versions!),
      sum: rows.sum,
    });
  }
  return facts;
}

/** The ranges' digests added up per table: the table's facts, with no second scan. */
export function tableDigests(facts: RangeFacts): Map<string, RowsDigest> {
  const tables = new Map<string, RowsDigest>();
  for (const [range, fingerprint] of facts) {
    const table = `${range.table.schema}.${range.table.name}`;
    const sum = tables.get(table) ?? { rows: 0, sum: 0n };
    tables.set(table, { rows: sum.rows + fingerprint.rows, sum: sum.sum + fingerprint.sum });
  }
  return tables;
}

/** Writes the fingerprints into the manifest's tables, in the order of their files. */
export function recordFingerprints(ranges: readonly PlannedRange[], facts: RangeFacts): void {
  for (const range of ranges) {
    const { sum: _, ...fingerprint } = facts.get(range)!;
    range.table.fingerprints ??= [];
    range.table.fingerprints.push(fingerprint);
  }
}

/** Whether ranges of the parent's manifest can hold the same text as ranges dumped now. */
export function comparable(previous: TableDataManifest, now: TableDataManifest): boolean {
  return (
    previous.textFormat === RANGE_TEXT_FORMAT &&
    previous.serverVersionNum === now.serverVersionNum &&
    previous.encoding === now.encoding
  );
}

/** The planned ranges whose rows are the parent's, each with the parent's range file as it was consumed. */
export function unchangedRanges<T>(
  ranges: readonly PlannedRange[],
  facts: RangeFacts,
  previous: PreviousRanges<T>,
): Map<PlannedRange, T> {
  const unchanged = new Map<PlannedRange, T>();
  for (const range of ranges) {
    const { table } = range;
    const before = previous.manifest.tables.find(
      (old) =>
        old.schema === table.schema &&
        old.name === table.name &&
        JSON.stringify(old.columns) === JSON.stringify(table.columns) &&
        old.format === table.format &&
        JSON.stringify(old.types) === JSON.stringify(table.types),
    );
    const index = before?.fingerprints?.findIndex((old) => old.from === range.from) ?? -1;
    if (!before || index < 0) continue;
    const old = before.fingerprints![index]!;
    const now = facts.get(range)!;
    const file = before.files[index];
    const consumed = file === undefined ? undefined : previous.files.get(file);
    if (
      consumed !== undefined &&
      old.rows === now.rows &&
      old.digest === now.digest &&
      old.versions === now.versions
    ) {
      unchanged.set(range, consumed);
    }
  }
  return unchanged;
}

/**
 * The parent snapshot's postgres tree as PreviousRanges: its manifest and its range files whose every chunk the
 * repository still holds. Undefined when it has no fingerprinted manifest, or it cannot be read: then every range
 * is dumped, as in a first backup.
 */
export async function previousRanges(
  repo: Repository,
  treeId: string | undefined,
): Promise<PreviousRanges<DumpedBlobs> | undefined> {
  if (!treeId) return undefined;
  try {
    const entries = new Map((await repo.readTree(treeId)).entries.map((entry) => [entry.name, entry]));
    const manifestEntry = entries.get(TABLE_DATA_MANIFEST);
    if (manifestEntry?.type !== 'file') return undefined;
    const text = await readAll(fileContents(repo, manifestEntry, `postgres/${TABLE_DATA_MANIFEST}`));
    const manifest = parseRangeManifest(text.toString('utf8'));
    const files = new Map<string, DumpedBlobs>();
    for (const name of manifest.tables.flatMap((table) => (table.fingerprints ? table.files : []))) {
      const entry = entries.get(name);
      if (entry?.type !== 'file' || !entry.chunks || !(await everyChunkPresent(repo, entry.chunks))) continue;
      files.set(name, { chunks: entry.chunks, size: entry.size, blobsAdded: 0, bytesAdded: 0 });
    }
    return { manifest, files };
  } catch {
    // A parent that cannot be read costs this backup its shortcut, nothing more: every range is dumped.
    return undefined;
  }
}
