import { openDatabase, type Sql } from '../../db/connection.ts';
import { databaseOf, withDatabase } from '../../lib/connection-url.ts';

/** Databases as a restore handles them: is one empty, create one, replace one. */

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** No tables, views or sequences outside the system schemas: safe to restore into. */
export async function isDatabaseEmpty(url: string): Promise<boolean> {
  const [row] = await withSql(
    url,
    (sql) => sql<{ n: number }[]>`
    select count(*) as n from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and c.relpersistence <> 't'
      and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'`,
  );
  return Number(row!.n) === 0;
}

/** One connection for one job, always closed. */
export async function withSql<T>(url: string, fn: (sql: Sql) => Promise<T>): Promise<T> {
  // Admin and restore work: it may write into a database an unfinished restore made read-only by default, and
  // commits locally (with BACKUP_SYNC no receiver runs while a restore does).
  const sql = openDatabase(url, { max: 1, writable: true, localCommit: true });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Creates `name` (from template0: nothing of template1 to collide with the dump); true when it did. */
export async function createDatabaseIfMissing(adminUrl: string, name: string): Promise<boolean> {
  return await withSql(adminUrl, async (sql) => {
    const rows = await sql`select 1 from pg_database where datname = ${name}`;
    if (rows.length) return false;
    try {
      await sql.unsafe(`create database ${quoteIdent(name)} template template0`);
      return true;
    } catch (error) {
      // Someone else created it in the meantime.
      if ((error as { code?: string }).code === '42P04') return false;
      throw error;
    }
  });
}

/**
 * Drops and recreates a database for an in-place restore, disconnecting its sessions. Without
 * `name`, the database of `url` is recreated through the server's `postgres` database. Destructive: the
 * caller decides when it may (I9).
 */
export async function dropAndRecreateDatabase(url: string, name?: string): Promise<void> {
  let adminUrl = url;
  if (!name) {
    name = databaseOf(url);
    adminUrl = withDatabase(url, 'postgres');
  }
  const target = name;
  await withSql(adminUrl, async (sql) => {
    // WITH (FORCE) (PostgreSQL 13+) disconnects every session, even one that arrives while we drop.
    await sql.unsafe(`drop database if exists ${quoteIdent(target)} with (force)`);
    await sql.unsafe(`create database ${quoteIdent(target)} template template0`);
  });
}
