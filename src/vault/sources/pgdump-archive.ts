/**
 * Reads a pg_dump custom-format archive as a stream, front to back: its header and table of contents, then its
 * data blocks. Only what a restore that loads table data itself needs (postgres-stream-load.ts); everything
 * else in an archive is left to pg_restore. Format: PostgreSQL's pg_backup_archiver.c and pg_backup_custom.c.
 */

/** Archive versions read here: 1.14 is written by pg_dump 12 to 15 (1.15 changed the header, 1.16 the TOC). */
const SUPPORTED_VERSIONS = new Set(['1.14']);

const MAGIC = 'PGDMP';
const FORMAT_CUSTOM = 1;
const BLOCK_DATA = 1;
const EMPTY: Buffer = Buffer.alloc(0);

export class ArchiveFormatError extends Error {
  override name = 'ArchiveFormatError';
}

export interface ArchiveEntry {
  dumpId: number;
  /** The entry has a data block. */
  hadDumper: boolean;
  /** What it is: `TABLE`, `TABLE DATA`, `SEQUENCE SET`, `BLOBS`, `ENCODING`… */
  desc: string;
  tag: string;
  namespace: string;
  defn: string;
  /** For TABLE DATA: the `COPY … FROM stdin;` its data block is the input of. */
  copyStmt: string;
}

export interface ArchiveToc {
  /** `major.minor` of the archive format. */
  version: string;
  /** Data blocks compressed by pg_dump (trendgen's own dumps never are). */
  compressed: boolean;
  entries: ArchiveEntry[];
  /** The archive's bytes up to the end of its table of contents: a file pg_restore reads the schema from. */
  head: Buffer;
}

/** A byte source over an archive's chunks that reads small fields without copying whole chunks. */
export class ArchiveReader {
  private buffer = EMPTY;
  private position = 0;
  private recorded: Buffer[] | undefined;
  private intSize = 4;
  private offsetSize = 8;

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  private get available(): number {
    return this.buffer.length - this.position;
  }

  /** Makes the next chunk current when this one is used up; false at the end of the archive. */
  private async advance(): Promise<boolean> {
    while (this.available === 0) {
      const next = await this.source.next();
      if (next.done) return false;
      this.buffer = next.value;
      this.position = 0;
    }
    return true;
  }

  private consume(length: number): Buffer {
    const bytes = this.buffer.subarray(this.position, this.position + length);
    this.position += length;
    this.recorded?.push(bytes);
    return bytes;
  }

  /** The next `length` bytes, as a view when they lie in one chunk. */
  async bytes(length: number, what: string): Promise<Buffer> {
    if (this.available >= length) return this.consume(length);
    const parts: Buffer[] = [];
    let missing = length;
    while (missing > 0) {
      if (!(await this.advance())) throw new ArchiveFormatError(`The dump ends in the middle of ${what}.`);
      const part = this.consume(Math.min(missing, this.available));
      parts.push(part);
      missing -= part.length;
    }
    return Buffer.concat(parts, length);
  }

  async byte(what: string): Promise<number> {
    if (this.available >= 1) return this.consume(1)[0]!;
    return (await this.bytes(1, what))[0]!;
  }

  /** pg_dump's integer: a sign byte, then intSize bytes, least significant first. */
  async int(what: string): Promise<number> {
    const bytes = await this.bytes(1 + this.intSize, what);
    let value = 0;
    for (let i = this.intSize; i >= 1; i--) value = value * 256 + bytes[i]!;
    return bytes[0] ? -value : value;
  }

  /** pg_dump's string: an integer length (-1 for none), then the bytes. */
  async str(what: string): Promise<string | undefined> {
    const length = await this.int(what);
    if (length < 0) return undefined;
    return (await this.bytes(length, what)).toString('utf8');
  }

  async offset(what: string): Promise<void> {
    await this.bytes(1 + this.offsetSize, what);
  }

  setSizes(intSize: number, offsetSize: number): void {
    this.intSize = intSize;
    this.offsetSize = offsetSize;
  }

  startRecording(): void {
    this.recorded = [];
  }

  stopRecording(): Buffer {
    const head = Buffer.concat(this.recorded ?? []);
    this.recorded = undefined;
    return head;
  }

  /** True at the end of the archive. */
  async atEnd(): Promise<boolean> {
    return !(await this.advance());
  }

  /**
   * Copies up to `length` bytes into `target` at `at`, from the current chunk only (so no await per row);
   * returns how many it copied, 0 only at the end of the archive.
   */
  async copyInto(target: Buffer, at: number, length: number): Promise<number> {
    if (!(await this.advance())) return 0;
    return this.copyBuffered(target, at, length);
  }

  /** copyInto without waiting: 0 when the current chunk is used up. */
  copyBuffered(target: Buffer, at: number, length: number): number {
    const count = Math.min(length, this.available, target.length - at);
    this.buffer.copy(target, at, this.position, this.position + count);
    this.position += count;
    return count;
  }

  /** Reads an integer synchronously when its bytes are at hand (the data loop's fast path), else undefined. */
  intIfBuffered(): number | undefined {
    if (this.available < 1 + this.intSize) return undefined;
    const at = this.position;
    let value = 0;
    for (let i = this.intSize; i >= 1; i--) value = value * 256 + this.buffer[at + i]!;
    this.position += 1 + this.intSize;
    return this.buffer[at] ? -value : value;
  }
}

/** Reads the header and table of contents; `unsupported` says why this archive is left to pg_restore whole. */
export async function readArchiveToc(
  reader: ArchiveReader,
): Promise<{ toc: ArchiveToc } | { unsupported: string }> {
  reader.startRecording();
  const magic = (await reader.bytes(5, 'the header')).toString('latin1');
  if (magic !== MAGIC) throw new ArchiveFormatError('The dump is not a pg_dump custom-format archive.');
  const [major, minor, , intSize, offsetSize, format] = await reader.bytes(6, 'the header');
  const version = `${major}.${minor}`;
  if (!SUPPORTED_VERSIONS.has(version)) return { unsupported: `archive format ${version}` };
  if (format !== FORMAT_CUSTOM) return { unsupported: `archive format code ${format}` };
  if (!intSize || intSize > 6 || !offsetSize || offsetSize > 8)
    throw new ArchiveFormatError(`The dump's header is damaged (integer size ${intSize}).`);
  reader.setSizes(intSize, offsetSize);
  const compression = await reader.int('the header');
  for (let i = 0; i < 7; i++) await reader.int('the header'); // creation time
  for (let i = 0; i < 3; i++) await reader.str('the header'); // database, server and pg_dump versions
  const count = await reader.int('the table of contents');
  if (count < 0) throw new ArchiveFormatError('The dump\u2019s table of contents is damaged.');
  const entries: ArchiveEntry[] = [];
  for (let i = 0; i < count; i++) entries.push(await readEntry(reader));
  return { toc: { version, compressed: compression !== 0, entries, head: reader.stopRecording() } };
}

async function readEntry(reader: ArchiveReader): Promise<ArchiveEntry> {
  const what = 'the table of contents';
  const dumpId = await reader.int(what);
  const hadDumper = (await reader.int(what)) !== 0;
  await reader.str(what); // table oid
  await reader.str(what); // oid
  const tag = (await reader.str(what)) ?? '';
  const desc = (await reader.str(what)) ?? '';
  await reader.int(what); // section
  const defn = (await reader.str(what)) ?? '';
  await reader.str(what); // drop statement
  const copyStmt = (await reader.str(what)) ?? '';
  const namespace = (await reader.str(what)) ?? '';
  for (let i = 0; i < 4; i++) await reader.str(what); // tablespace, table access method, owner, "with oids"
  while ((await reader.str(what)) !== undefined); // dependencies, ended by a null string
  await reader.offset(what);
  return { dumpId, hadDumper, desc, tag, namespace, defn, copyStmt };
}

export interface DataBlock {
  dumpId: number;
  /** The block's bytes in pieces of up to `pieceSize`: read it to its end before asking for the next block. */
  pieces: AsyncGenerator<Buffer>;
}

/**
 * The data blocks after the table of contents, in archive order. A block is a run of length-prefixed chunks
 * ended by an empty one (pg_dump 15 writes one per row); their bytes are gathered into pieces so a consumer
 * sees a few large buffers, not millions of rows. Pieces are new buffers: they may be kept.
 */
export async function* dataBlocks(reader: ArchiveReader, pieceSize = 1 << 20): AsyncGenerator<DataBlock> {
  while (!(await reader.atEnd())) {
    const type = await reader.byte('a data block');
    if (type !== BLOCK_DATA)
      throw new ArchiveFormatError(`The dump holds a data block of type ${type}, which is not table data.`);
    const dumpId = await reader.int('a data block');
    const pieces = blockPieces(reader, pieceSize);
    yield { dumpId, pieces };
  }
}

async function* blockPieces(reader: ArchiveReader, pieceSize: number): AsyncGenerator<Buffer> {
  let piece = Buffer.allocUnsafe(pieceSize);
  let filled = 0;
  for (;;) {
    const length = reader.intIfBuffered() ?? (await reader.int('a data block'));
    if (length < 0) throw new ArchiveFormatError('The dump holds a data chunk of negative length.');
    if (length === 0) break;
    let missing = length;
    while (missing > 0) {
      if (filled === piece.length) {
        yield piece;
        piece = Buffer.allocUnsafe(pieceSize);
        filled = 0;
      }
      const copied =
        reader.copyBuffered(piece, filled, missing) || (await reader.copyInto(piece, filled, missing));
      if (copied === 0) throw new ArchiveFormatError('The dump ends in the middle of a data block.');
      filled += copied;
      missing -= copied;
    }
  }
  if (filled > 0) yield piece.subarray(0, filled);
}
