import type { TransactionSql } from '../../db/connection.ts';
import { withSql } from './postgres-admin.ts';
import type { PostgresFacts, TableFacts } from './types.ts';

/**
 * What a backup records of each table and a restore proves it brought back (I7): row count and an
 * order-independent digest, read in the dump's own snapshot.
 */

export interface TableMismatch {
  table: string;
  /** Undefined: the table is in the target but was not in the backup. */
  expected: TableFacts | undefined;
  /** Undefined: the table was in the backup but is missing from the target. */
  actual: TableFacts | undefined;
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Row text depends on session settings (time zone, date and interval style, bytea and money output):
 * pin them, so the same rows give the same digest at backup time and on whatever server verifies them.
 */
export async function pinOutputSettings(tx: TransactionSql): Promise<void> {
  await tx`select set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true),
    set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '1', true),
    set_config('bytea_output', 'hex', true), set_config('lc_monetary', 'C', true),
    set_config('statement_timeout', '0', true)`;
}

/**
 * Facts of every ordinary table (not system, not temporary or unlogged, not owned by an extension, as pg_dump
 * skips their data): row count and an order-independent digest, the sum mod 2^64 of the first 64 bits
 * of md5(row text). One sequential scan per table, no sort.
 */
export async function computeTableFacts(tx: TransactionSql): Promise<Record<string, TableFacts>> {
  const tables = await tx<{ schema: string; name: string }[]>`
    select n.nspname as schema, c.relname as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'r' and c.relpersistence = 'p'
      and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
      and not exists (select 1 from pg_depend d
        where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
    order by 1, 2`;
  const facts: Record<string, TableFacts> = {};
  for (const { schema, name } of tables) {
    // ONLY: rows of inheritance children are counted under the child, as pg_dump dumps them.
    const [row] = await tx.unsafe<{ rows: number; sum: string }[]>(
      `select count(*) as rows,
         coalesce(sum(('x' || substr(md5(row(r.*)::text), 1, 16))::bit(64)::bigint), 0)::text as sum
       from only ${quoteIdent(schema)}.${quoteIdent(name)} as r`,
    );
    const digest = BigInt.asUintN(64, BigInt(row!.sum));
    facts[`${schema}.${name}`] = { rows: Number(row!.rows), hash: digest.toString(16).padStart(16, '0') };
  }
  return facts;
}

/** Facts of a database as it is now (one read-only snapshot). */
export async function tableFacts(url: string): Promise<Record<string, TableFacts>> {
  return await withSql(url, (sql) =>
    sql.begin('isolation level repeatable read read only', async (tx) => {
      await pinOutputSettings(tx);
      // The database may hold what a dump brought: only built-in functions and operators are called here.
      await tx`select set_config('search_path', 'pg_catalog', true)`;
      return await computeTableFacts(tx);
    }),
  );
}

/** Compares a database with the facts of a backup; missing and extra tables are mismatches too (I7). */
export async function verifyPostgres(
  url: string,
  facts: PostgresFacts,
): Promise<{ ok: boolean; mismatches: TableMismatch[] }> {
  const actual = await tableFacts(url);
  const mismatches: TableMismatch[] = [];
  for (const table of new Set([...Object.keys(facts.tables), ...Object.keys(actual)])) {
    const want = facts.tables[table];
    const got = actual[table];
    if (want?.rows !== got?.rows || want?.hash !== got?.hash) {
      mismatches.push({ table, expected: want, actual: got });
    }
  }
  return { ok: mismatches.length === 0, mismatches };
}
