import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { Sql } from '../db/connection.ts';

/** Where damage was noticed, and what repaired it (`object_damage`, owned here). */
export type DamageFinder = 'read' | 'scrub' | 'backup' | 'upload';
export type Repairer = 'upload' | 'vault';

/** Bytes read back from the store that do not hash to the object's SHA-256. */
export class ObjectDamagedError extends Error {
  override name = 'ObjectDamagedError';
  constructor(
    readonly key: string,
    readonly actual: string,
  ) {
    super(
      `The stored bytes of ${key} do not match its SHA-256 (they hash to ${actual.slice(0, 12)}…): the copy is damaged.`,
    );
  }
}

/**
 * Passes the bytes through while hashing them, holding back the last chunk until the hash is known: a damaged
 * object ends with an error before its final byte, so a reader never receives all of its length and the wrong
 * bytes are never complete under the right ETag.
 */
export function verifyingStream(key: string, sha256: string, onDamage?: (error: ObjectDamagedError) => void) {
  const hash = createHash('sha256');
  let held: Buffer | undefined;
  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      hash.update(chunk);
      const previous = held;
      held = chunk;
      done(null, previous);
    },
    flush(done: TransformCallback) {
      const actual = hash.digest('hex');
      if (actual !== sha256) {
        const error = new ObjectDamagedError(key, actual);
        onDamage?.(error);
        return done(error);
      }
      done(null, held);
    },
  });
}

/** Records (or counts again) damage found in the stored copy of `key`; an earlier repair is forgotten. */
export async function recordObjectDamage(sql: Sql, key: string, foundBy: DamageFinder): Promise<void> {
  await sql`
    insert into object_damage (key, found_by) values (${key}, ${foundBy})
    on conflict (key) do update set
      detections = object_damage.detections + 1, last_found_at = now(),
      found_by = case when object_damage.repaired_at is null then object_damage.found_by else excluded.found_by end,
      found_at = case when object_damage.repaired_at is null then object_damage.found_at else now() end,
      repaired_at = null, repaired_by = null`;
}

/** Marks the damage of `key` repaired (its true bytes are stored again); nothing when none was recorded. */
export async function recordObjectRepair(sql: Sql, key: string, by: Repairer): Promise<boolean> {
  const rows = await sql`
    update object_damage set repaired_at = now(), repaired_by = ${by}
    where key = ${key} and repaired_at is null returning key`;
  return rows.length > 0;
}

export interface DamagedObject {
  key: string;
  foundBy: DamageFinder;
  foundAt: Date;
  detections: number;
}

/** Damage not repaired yet, oldest first: what alerts, doctor and /readyz report. */
export async function unrepairedObjectDamage(sql: Sql): Promise<DamagedObject[]> {
  return sql<DamagedObject[]>`
    select key, found_by as "foundBy", found_at as "foundAt", detections
    from object_damage where repaired_at is null order by found_at, key`;
}

/** Every detection so far by who found it, for the metric (a counter across every process). */
export async function objectDamageDetections(sql: Sql): Promise<Map<string, number>> {
  const rows = await sql`select found_by, sum(detections)::int as n from object_damage group by found_by`;
  return new Map(rows.map((row) => [row.found_by as string, row.n as number]));
}
