import { crc32c } from '@aws-crypto/crc32c';
import { readRange } from './tree-file.ts';
import type { WalSample } from './wal-clock.ts';

/**
 * Recognises WAL that holds nothing a restore needs, so the shipper need not store it: the commit records of
 * protect's own status writes and the standby snapshots (RUNNING_XACTS) the server logs every 15 s while
 * anything is written. A status write changes only an unlogged table, which recovery empties, yet as a
 * transaction it leaves a commit record; stored, each one cost a piece and a tree in every target twice a
 * second on a service doing nothing else (0.7 MB a minute).
 *
 * Only whole, checksummed records count: a range that starts or ends inside a record, holds any other kind
 * of record, a commit of any other transaction, or a page header that does not name its own address is not
 * recognised, and is shipped as every other WAL is.
 */

/** Idle WAL is looked through up to this much past the last record; beyond it, it is simply shipped. */
const IDLE_WAL_MAX_BYTES = 128 * 1024;
/** The status writes whose commit records may be left unshipped: the newest ones (8 minutes' worth). */
const IDLE_XIDS_KEPT = 1024;
const RECORD_HEADER_BYTES = 24;
/** Longer than any commit of a one-statement transaction or a standby snapshot of a quiet server. */
const LONGEST_RECOGNISED_RECORD = 8192;
const RM_XACT_ID = 1;
const RM_STANDBY_ID = 8;
const XLOG_XACT_OPMASK = 0x70;
const XLOG_XACT_COMMIT = 0x00;
const XLOG_RUNNING_XACTS = 0x10;
const XLP_FIRST_IS_CONTRECORD = 0x0001;
const XLP_LONG_HEADER = 0x0002;
const SHORT_PAGE_HEADER_BYTES = 24;
const LONG_PAGE_HEADER_BYTES = 40;

/** The transactions protect noted as its own status writes, and whether WAL after a record holds only idle records. */
export class IdleWal {
  private readonly xids = new Set<number>();

  /**
   * A transaction that wrote only unlogged tables: its commit record may stay unshipped while nothing else
   * follows it (an idle service's status writes would otherwise be shipped twice a second).
   */
  note(xid: number): void {
    this.xids.add(xid);
    if (this.xids.size > IDLE_XIDS_KEPT) this.xids.delete(this.xids.values().next().value!);
  }

  /** Whether the receiver's `file` (a segment starting at `fileStart`) holds only idle records from `from` to its flush position. */
  async onlyIdleAfter(file: string, fileStart: bigint, from: bigint, sample: WalSample): Promise<boolean> {
    const length = Number(sample.flushLsn! - from);
    if (this.xids.size === 0 || length > IDLE_WAL_MAX_BYTES) return false;
    const bytes = await readRange(file, Number(from - fileStart), length);
    return bytes !== undefined && holdsOnlyOwnCommits(bytes, from, this.xids, sample.pageBytes);
  }
}

/**
 * True when `bytes`, the WAL from `start`, is one or more whole records, each a commit of a transaction in
 * `ownXids` or a standby snapshot. `pageBytes` is the server's `wal_block_size`.
 */
export function holdsOnlyOwnCommits(
  bytes: Buffer,
  start: bigint,
  ownXids: ReadonlySet<number>,
  pageBytes: number,
): boolean {
  const end = start + BigInt(bytes.length);
  const page = BigInt(pageBytes);
  if (bytes.length === 0 || start % 8n !== 0n) return false;
  let position = start;
  while (position < end) {
    // A record starts 8-aligned, so its length (its first 4 bytes) never crosses a page boundary.
    const lengthField = take(bytes, start, position, 4, page);
    if (!lengthField) return false;
    const totalLength = lengthField.data.readUInt32LE(0);
    if (totalLength < RECORD_HEADER_BYTES || totalLength > LONGEST_RECOGNISED_RECORD) return false;
    const record = take(bytes, start, position, totalLength, page);
    if (!record) return false;
    if (!isIdleRecord(record.data, ownXids)) return false;
    position = (record.end + 7n) & ~7n;
  }
  return position === end;
}

function isIdleRecord(record: Buffer, ownXids: ReadonlySet<number>): boolean {
  const crc = crc32c(Buffer.concat([record.subarray(RECORD_HEADER_BYTES), record.subarray(0, 20)]));
  if (crc !== record.readUInt32LE(20)) return false;
  const xid = record.readUInt32LE(4);
  const info = record[16]!;
  const resourceManager = record[17]!;
  if (resourceManager === RM_XACT_ID)
    return (info & XLOG_XACT_OPMASK) === XLOG_XACT_COMMIT && ownXids.has(xid);
  return resourceManager === RM_STANDBY_ID && (info & 0xf0) === XLOG_RUNNING_XACTS;
}

/**
 * `length` bytes of one record from `position`, the page headers it crosses left out, and where it ends. Undefined when the bytes run out or a page header is not what this record needs.
 */
function take(
  bytes: Buffer,
  start: bigint,
  position: bigint,
  length: number,
  page: bigint,
): { data: Buffer; end: bigint } | undefined {
  const parts: Buffer[] = [];
  let taken = 0;
  let at = position;
  while (taken < length) {
    if (at % page === 0n) {
      const skip = pageHeaderLength(bytes, start, at, taken === 0 ? 0 : length - taken);
      if (skip === undefined) return undefined;
      at += BigInt(skip);
    }
    const pageEnd = (at / page + 1n) * page;
    const count = Math.min(length - taken, Number(pageEnd - at));
    const offset = Number(at - start);
    if (offset + count > bytes.length) return undefined;
    parts.push(bytes.subarray(offset, offset + count));
    taken += count;
    at += BigInt(count);
  }
  return { data: parts.length === 1 ? parts[0]! : Buffer.concat(parts), end: at };
}

/**
 * The length of the page header at `at`, when it names this page and says whether a record continues on it
 * as the reader expects: `remaining` bytes of one (0: a new record begins after the header).
 */
function pageHeaderLength(bytes: Buffer, start: bigint, at: bigint, remaining: number): number | undefined {
  const offset = Number(at - start);
  if (offset + SHORT_PAGE_HEADER_BYTES > bytes.length) return undefined;
  const info = bytes.readUInt16LE(offset + 2);
  if (bytes.readBigUInt64LE(offset + 8) !== at) return undefined;
  const continued = (info & XLP_FIRST_IS_CONTRECORD) !== 0;
  if (continued !== remaining > 0) return undefined;
  if (continued && bytes.readUInt32LE(offset + 16) !== remaining) return undefined;
  return info & XLP_LONG_HEADER ? LONG_PAGE_HEADER_BYTES : SHORT_PAGE_HEADER_BYTES;
}
