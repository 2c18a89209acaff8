import postgres from 'postgres';
import { formatConnectionUrl, parseConnectionUrl } from '../lib/connection-url.ts';

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

export interface DatabaseOptions {
  max?: number;
  /** Called with PostgreSQL's NOTICE messages; silent by default. */
  onNotice?: (notice: postgres.Notice) => void;
}

/** One pool per process; every query is parameterised by the tagged-template API. */
export function openDatabase(url: string, options: DatabaseOptions = {}): Sql {
  // Normalised (credentials percent-encoded, `?password=` moved into the user info): postgres.js finds the host
  // list of a failover URL by the first `@`, and would send an unknown `password` parameter to the server.
  return postgres(formatConnectionUrl(parseConnectionUrl(url, { multiHost: true })), {
    max: options.max ?? 10,
    idle_timeout: 30,
    connect_timeout: 10,
    onnotice: options.onNotice ?? (() => {}),
    // bigint columns (sizes, counts) arrive as JS numbers: they stay far below 2^53.
    types: {
      bigint: {
        to: 20,
        from: [20],
        serialize: (value: number) => String(value),
        parse: (value: string) => Number(value),
      },
    },
    transform: { undefined: null },
    connection: { application_name: 'trendgen' },
  });
}

/** Creates `database` on the server behind `adminUrl` when it does not exist yet. */
export async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`select 1 from pg_database where datname = ${database}`;
    if (rows.length === 0) {
      try {
        await sql.unsafe(`create database "${database.replaceAll('"', '""')}"`);
      } catch (error) {
        // Two processes starting together: the other one created it first.
        if ((error as { code?: string }).code !== '42P04') throw error;
      }
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}
