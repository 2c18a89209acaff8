import type { Sql, TransactionSql } from '../db/connection.ts';

/** Reads of the objects index for other modules (trends, metrics, backup, drill); writes are in store.ts. */

export async function countLiveObjectsByKind(sql: Sql): Promise<Map<string, number>> {
  const rows = await sql`select kind, count(*)::int as n from objects where deleted_at is null group by kind`;
  return new Map(rows.map((row) => [row.kind as string, row.n as number]));
}

export async function liveObjectBytes(sql: Sql): Promise<number> {
  const [row] =
    await sql`select coalesce(sum(size), 0)::bigint as bytes from objects where deleted_at is null`;
  return Number(row?.bytes ?? 0);
}

/** The live objects among `keys`, by key: their hash, size and type (a trend shows its example's). */
export async function liveObjectsByKey(
  sql: Sql,
  keys: string[],
): Promise<Map<string, { sha256: string; size: number; contentType: string }>> {
  if (keys.length === 0) return new Map();
  const rows = await sql`
    select key, sha256, size, content_type from objects where key = any(${keys}) and deleted_at is null`;
  return new Map(
    rows.map((row) => [
      row.key as string,
      { sha256: row.sha256 as string, size: Number(row.size), contentType: row.content_type as string },
    ]),
  );
}

/** Every live object with its hash and size (a drill checks each against the restored files). */
export async function liveObjects(sql: Sql): Promise<Array<{ key: string; sha256: string; size: number }>> {
  const rows = await sql`select key, sha256, size from objects where deleted_at is null`;
  return rows.map((row) => ({
    key: row.key as string,
    sha256: row.sha256 as string,
    size: Number(row.size),
  }));
}

/**
 * The keys of live objects, read inside the caller's transaction (the backup reads them in the same snapshot
 * as its dump); none in a database not migrated yet.
 */
export async function liveObjectKeys(tx: TransactionSql): Promise<string[]> {
  const [present] = await tx<{ ok: boolean }[]>`select to_regclass('objects') is not null as ok`;
  if (!present?.ok) return [];
  const rows = await tx<{ key: string }[]>`select key from objects where deleted_at is null`;
  return rows.map((row) => row.key);
}
