import { execFileSync } from 'node:child_process';
import type { Sql, TransactionSql } from '../../src/db/connection.ts';
import { findPostgresBinary } from '../../src/embedded/binaries.ts';
import { libpqConnection } from '../../src/vault/sources/postgres-client.ts';

/** The tables whose rows a custom-format dump holds (`pg_restore --list`). */
export function dumpDataTables(archive: string): string[] {
  const listing = execFileSync(findPostgresBinary('pg_restore'), ['--list', archive], { encoding: 'utf8' });
  return [...listing.matchAll(/^\d+;\s+\d+\s+\d+\s+TABLE DATA\s+(\S+)\s+(\S+)\s/gm)].map(
    (m) => `${m[1]}.${m[2]}`,
  );
}

/**
 * Commits `write(tx, n)` for n = 1, 2, … one transaction after another until stopped; `stop` says how many
 * committed. A dump taken meanwhile must hold each transaction wholly or not at all (I8).
 */
export function startInserter(
  sql: Sql,
  write: (tx: TransactionSql, n: number) => Promise<unknown>,
): { stop(): Promise<number> } {
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      n++;
      await sql.begin((tx) => write(tx, n));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return n;
    },
  };
}

/** Runs a plain SQL script with psql into the database at `url`, stopping at its first error. */
export function loadSqlScript(file: string, url: string): void {
  const conn = libpqConnection(url);
  execFileSync(
    findPostgresBinary('psql'),
    ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', file, `--dbname=${conn.dbname}`],
    { env: conn.env, stdio: ['ignore', 'ignore', 'pipe'] },
  );
}
