/**
 * PostgreSQL write-ahead log positions and segment names. An LSN is a 64-bit byte position printed as
 * `HI/LO` in hex; a segment file is named by timeline, then the segment number split in two 8-hex halves.
 */

export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;

const LSN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;
const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;

export function parseLsn(text: string): bigint {
  const match = LSN.exec(text.trim());
  if (!match) throw new Error(`Not a WAL position: ${JSON.stringify(text)}.`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export interface SegmentName {
  timeline: number;
  segno: bigint;
}

export function isSegmentName(name: string): boolean {
  return SEGMENT.test(name);
}

export function isHistoryName(name: string): boolean {
  return HISTORY.test(name);
}

export function parseSegmentName(name: string, segmentBytes = DEFAULT_SEGMENT_BYTES): SegmentName {
  const match = SEGMENT.exec(name);
  if (!match) throw new Error(`Not a WAL segment name: ${JSON.stringify(name)}.`);
  const perId = 0x100000000n / BigInt(segmentBytes);
  return {
    timeline: Number.parseInt(match[1]!, 16),
    segno: BigInt(`0x${match[2]}`) * perId + BigInt(`0x${match[3]}`),
  };
}

export function segmentName(timeline: number, segno: bigint, segmentBytes = DEFAULT_SEGMENT_BYTES): string {
  const perId = 0x100000000n / BigInt(segmentBytes);
  const hex = (value: bigint | number) => value.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(segno / perId)}${hex(segno % perId)}`;
}

/** The segment that holds the byte at `lsn`. */
export function segmentOf(lsn: bigint, segmentBytes = DEFAULT_SEGMENT_BYTES): bigint {
  return lsn / BigInt(segmentBytes);
}

/** The first LSN of a segment. */
export function segmentStart(segno: bigint, segmentBytes = DEFAULT_SEGMENT_BYTES): bigint {
  return segno * BigInt(segmentBytes);
}
