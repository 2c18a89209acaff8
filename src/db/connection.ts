import postgres from 'postgres';
import { formatConnectionUrl, parseConnectionUrl } from '../lib/connection-url.ts';
import { noDelaySockets } from './no-delay-socket.ts';
import { postgresTls } from './tls.ts';

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

export interface DatabaseOptions {
  max?: number;
  /** Called with PostgreSQL's NOTICE messages; silent by default. */
  onNotice?: (notice: postgres.Notice) => void;
  /**
   * Commits wait only for this server's own disk, never for a synchronous standby: for trendgen's own
   * bookkeeping (migrations, continuous protection's status), which must go on while the WAL receiver is down.
   */
  localCommit?: boolean;
  /** Writes even into a database a restore has made read-only by default while it is unfinished. */
  writable?: boolean;
  /** Nagle's algorithm off (no-delay-socket.ts): for connections that send COPY data. */
  noDelay?: boolean;
}

/** Connections of the service's long-running processes say which they are, e.g. `trendgen serve`. */
export const SERVICE_APPLICATION_NAMES = ['trendgen serve', 'trendgen worker', 'trendgen scheduler'];
let applicationName = 'trendgen';

/**
 * Names this process's connections from now on, so that a restore can tell the service is still using a
 * database (pg_stat_activity) and refuse to replace it under it.
 */
export function nameConnections(role: 'serve' | 'worker' | 'scheduler'): void {
  applicationName = `trendgen ${role}`;
}

/** One pool per process; every query is parameterised by the tagged-template API. */
export function openDatabase(url: string, options: DatabaseOptions = {}): Sql {
  // Normalised (credentials percent-encoded, `?password=` moved into the user info): postgres.js finds the host
  // list of a failover URL by the first `@`, and would send an unknown `password` parameter to the server, as it
  // would libpq's TLS parameters, which become its `ssl` option instead.
  const parsed = parseConnectionUrl(url, { multiHost: true });
  const tls = postgresTls(parsed);
  return postgres(formatConnectionUrl({ ...parsed, params: tls.params }), {
    ...(tls.ssl !== undefined ? { ssl: tls.ssl } : {}),
    ...(options.noDelay ? { socket: noDelaySockets() } : {}),
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
    connection: {
      application_name: applicationName,
      ...(options.localCommit ? { synchronous_commit: 'local' } : {}),
      // As text: postgres.js leaves out startup parameters whose value is falsy, `false` among them.
      ...(options.writable ? { default_transaction_read_only: 'off' as unknown as boolean } : {}),
    },
  });
}

/** Creates `database` on the server behind `adminUrl` when it does not exist yet. */
export async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const sql = openDatabase(adminUrl, { max: 1 });
  try {
    const rows = await sql`select 1 from pg_database where datname = ${database}`;
    if (rows.length === 0) {
      try {
        await sql`set synchronous_commit to local`;
        await sql.unsafe(`create database "${database.replaceAll('"', '""')}"`);
      } catch (error) {
        // Two processes starting together: the other one created it first (PostgreSQL says so as "already
        // exists", or, when both got past the check at once, as a unique violation on pg_database).
        const code = (error as { code?: string }).code;
        if (code !== '42P04' && code !== '23505') throw error;
      }
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}
