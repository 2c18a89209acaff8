import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlobNotFoundError, type BlobStore, BlobStoreError } from '../blobstore/blobstore.ts';
import type { Sql, TransactionSql } from '../db/connection.ts';
import {
  EmptyUploadError,
  ObjectNotFoundError,
  PayloadTooLargeError,
  UnsupportedTypeError,
} from './errors.ts';
import { checkImageFile } from './image-check.ts';
import { ObjectDamagedError, recordObjectDamage, recordObjectRepair, verifyingStream } from './integrity.ts';
import { type DetectedType, detectImageType, IMAGE_TYPES, SNIFF_BYTES } from './sniff.ts';

export const OBJECT_KINDS = ['example', 'photo', 'output', 'preview', 'receipt'] as const;
export type ObjectKind = (typeof OBJECT_KINDS)[number];

export interface ObjectRecord {
  key: string;
  sha256: string;
  size: number;
  contentType: string;
  kind: string;
  createdAt: Date;
}

export interface PutObjectOptions {
  kind: ObjectKind;
  maxBytes: number;
  /** What the bytes may be; the type is decided by the bytes (magic numbers), not by the client. */
  detect?: (head: Uint8Array) => DetectedType | undefined;
  /**
   * The Content-Type the client declared, when there is one. The type is still decided by the bytes
   * (a JPEG declared image/png is stored as the JPEG it is), but a declaration that is not an image at
   * all (text/html, image/svg+xml, a script) is refused: the client meant to send something else.
   */
  declaredType?: string;
  /**
   * Decode the whole image before anything is stored (objects/image-check.ts): uploads from clients, whose
   * bytes may be a polyglot, truncated or a decompression bomb. The worker's own outputs skip it.
   */
  decode?: boolean;
}

/** Declarations compatible with a stored image: the image types, or no claim at all. */
const ACCEPTED_DECLARATIONS = new Set([
  ...IMAGE_TYPES,
  'image/jpg',
  // No claim: none given, a generic byte stream, or multipart's default for a part without a type.
  '',
  'application/octet-stream',
  'text/plain',
]);

export function assertDeclaredType(declared: string | undefined, detected: DetectedType): void {
  if (declared === undefined) return;
  const type = declared.split(';')[0]!.trim().toLowerCase();
  if (ACCEPTED_DECLARATIONS.has(type)) return;
  throw new UnsupportedTypeError(
    `The upload is declared as ${JSON.stringify(type.slice(0, 100))}, but only PNG, JPEG and WebP images are accepted (its bytes are ${detected.contentType}).`,
  );
}

/** `<kind>/<aa>/<sha256>.<ext>`: immutable, content-addressed, so the same bytes always land on one key. */
export function objectKey(kind: string, sha256: string, extension: string): string {
  return `${kind}/${sha256.slice(0, 2)}/${sha256}.${extension}`;
}

interface Spooled {
  file: string;
  sha256: string;
  size: number;
  head: Buffer;
}

export interface ObjectStoreOptions {
  /**
   * Runs after an index row commits, before the write is answered: with BACKUP_SYNC on, the layer above
   * waits here until the object is in the local backup target (objects never import the vault).
   */
  onRecorded?: (record: ObjectRecord) => Promise<void>;
}

/**
 * Content-addressed objects on a blobstore, indexed in PostgreSQL.
 * Write path (I1, I2): the upload is spooled to a local temp file while hashed and measured (never held
 * in memory), its type is decided from its first bytes, the bytes are made durable in the blobstore, and
 * only then is the row inserted. A crash at any point leaves either nothing or a blob without a row
 * (harmless: the next upload of the same bytes adopts it, or the collector removes it after a grace period,
 * see purge.ts), never a row without its blob.
 */
export class ObjectStore {
  constructor(
    private readonly sql: Sql,
    readonly blobs: BlobStore,
    private readonly spoolDir: string,
    private readonly options: ObjectStoreOptions = {},
  ) {
    mkdirSync(spoolDir, { recursive: true });
  }

  private async spool(body: Readable, maxBytes: number): Promise<Spooled> {
    const file = path.join(this.spoolDir, `${Date.now()}-${randomBytes(8).toString('hex')}.upload`);
    const hash = createHash('sha256');
    let size = 0;
    const headParts: Buffer[] = [];
    let headSize = 0;
    const out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
    try {
      await pipeline(
        body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            size += chunk.length;
            if (size > maxBytes) throw new PayloadTooLargeError(maxBytes);
            if (headSize < SNIFF_BYTES) {
              headParts.push(chunk.subarray(0, SNIFF_BYTES - headSize));
              headSize += Math.min(chunk.length, SNIFF_BYTES - headSize);
            }
            hash.update(chunk);
            yield chunk;
          }
        },
        out,
      );
    } catch (error) {
      // A write stream destroyed while still opening creates its file afterwards: remove it once closed.
      if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
      rmSync(file, { force: true });
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        // The spool's disk, not the client, failed: answered like a full blob store, in one sentence.
        throw new BlobStoreError(
          `The disk under ${this.spoolDir} is full: free space or move DATA_DIR elsewhere.`,
          { cause: error },
        );
      }
      throw error;
    }
    return { file, sha256: hash.digest('hex'), size, head: Buffer.concat(headParts) };
  }

  /** Stores an upload and returns its record; the same bytes uploaded twice give the same key. */
  async put(body: Readable, options: PutObjectOptions): Promise<ObjectRecord> {
    const spooled = await this.spool(body, options.maxBytes);
    try {
      if (spooled.size === 0) throw new EmptyUploadError();
      const detected = (options.detect ?? detectImageType)(spooled.head);
      if (!detected) {
        throw new UnsupportedTypeError(
          'The upload is not a PNG, JPEG or WebP image (decided by its bytes, not its name).',
        );
      }
      assertDeclaredType(options.declaredType, detected);
      if (options.decode) await checkImageFile(spooled.file, detected);
      const key = objectKey(options.kind, spooled.sha256, detected.extension);
      const write = () =>
        this.blobs.put(key, createReadStream(spooled.file), {
          size: spooled.size,
          contentType: detected.contentType,
        });
      const existing = await this.blobs.head(key);
      // A stored copy of another size, or the right size but other bytes (a flipped bit), can only be damage:
      // the true bytes just uploaded replace it.
      const damaged =
        existing && (existing.size !== spooled.size || !(await this.holds(key, spooled.sha256)));
      if (!existing || damaged) await write();
      if (damaged) {
        await recordObjectDamage(this.sql, key, 'upload');
        await recordObjectRepair(this.sql, key, 'upload');
      }
      const args = [key, spooled.sha256, spooled.size, detected.contentType, options.kind] as const;
      let recorded = await this.record(...args);
      if (recorded) {
        // Once the row is live no collector removes the bytes; one that crashed after removing them, before
        // its commit, left the row as it was: so a missing blob is known only now, and written again.
        if (!(await this.blobs.head(key))) await write();
      } else {
        // The collector removed these bytes (before or while this upload ran): write them again, then revive.
        await write();
        recorded = await this.revive(...args);
      }
      await this.options.onRecorded?.(recorded);
      return recorded;
    } finally {
      rmSync(spooled.file, { force: true });
    }
  }

  /**
   * Inserts the index row for bytes that are already durable; clears a tombstone if the bytes came back.
   * Undefined when the row is purged: the collector may have removed the bytes after they were written
   * (it holds the row while it does), so they must be written again before `revive`. The stream queue's
   * entry is written by the same statement (I11): a committed row always has one.
   */
  private async record(
    key: string,
    sha256: string,
    size: number,
    contentType: string,
    kind: string,
  ): Promise<ObjectRecord | undefined> {
    const [row] = await this.sql`
      with row as (
        insert into objects (key, sha256, size, content_type, kind)
        values (${key}, ${sha256}, ${size}, ${contentType}, ${kind})
        on conflict (key) do update set deleted_at = null where objects.purged_at is null
        returning key, sha256, size, content_type, kind, created_at),
      queued as (insert into object_stream_queue (key) select key from row)
      select * from row`;
    return row ? toRecord(row) : undefined;
  }

  /** A purged row made live again once its bytes were written anew (the collector never touches purged rows). */
  private async revive(
    key: string,
    sha256: string,
    size: number,
    contentType: string,
    kind: string,
  ): Promise<ObjectRecord> {
    const [row] = await this.sql`
      with row as (
        update objects set sha256 = ${sha256}, size = ${size}, content_type = ${contentType}, kind = ${kind},
          deleted_at = null, purged_at = null
        where key = ${key}
        returning key, sha256, size, content_type, kind, created_at),
      queued as (insert into object_stream_queue (key) select key from row)
      select * from row`;
    return toRecord(row!);
  }

  async find(key: string): Promise<ObjectRecord | undefined> {
    const [row] = await this.sql`
      select key, sha256, size, content_type, kind, created_at from objects
      where key = ${key} and deleted_at is null`;
    return row ? toRecord(row) : undefined;
  }

  /**
   * The object's bytes, verified against its SHA-256 as they stream (I7): a damaged copy ends in
   * ObjectDamagedError before its last byte, and the damage is recorded for alerts and the scrub.
   */
  async open(key: string): Promise<{ record: ObjectRecord; body: Readable }> {
    const record = await this.find(key);
    if (!record) throw new ObjectNotFoundError(key);
    const verify = verifyingStream(key, record.sha256, () => {
      recordObjectDamage(this.sql, key, 'read').catch(() => {});
    });
    pipeline(await this.blobs.get(key), verify).catch(() => {});
    return { record, body: verify };
  }

  /** Whether the stored copy of `key` hashes to `sha256` (a missing copy does not). */
  private async holds(key: string, sha256: string): Promise<boolean> {
    try {
      await pipeline(
        await this.blobs.get(key),
        verifyingStream(key, sha256),
        new Writable({ write: (_c, _e, done) => done() }),
      );
      return true;
    } catch (error) {
      if (error instanceof ObjectDamagedError || error instanceof BlobNotFoundError) return false;
      throw error;
    }
  }
}

function toRecord(row: Record<string, unknown>): ObjectRecord {
  return {
    key: row.key as string,
    sha256: row.sha256 as string,
    size: Number(row.size),
    contentType: row.content_type as string,
    kind: row.kind as string,
    createdAt: row.created_at as Date,
  };
}

/**
 * Marks live objects deleted (I3): answers stop at once, the bytes stay until retention allows removal. Runs
 * in the caller's transaction when given one (a user's deletion tombstones in the same transaction as it
 * hides their rows); the number newly tombstoned.
 */
export async function tombstoneObjects(sql: Sql | TransactionSql, keys: string[]): Promise<number> {
  if (keys.length === 0) return 0;
  const rows = await sql`
    update objects set deleted_at = now() where key = any(${keys}) and deleted_at is null returning key`;
  return rows.length;
}
