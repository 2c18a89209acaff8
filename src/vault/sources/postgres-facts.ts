import type { TransactionSql } from '../../db/connection.ts';
import { withSql } from './postgres-admin.ts';
import type { DigestMethod, PostgresFacts, TableFacts } from './types.ts';

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

/** Both sum 64-bit values over the rows into a numeric, so the digest is the same whatever the rows' order. */
const DIGEST_SQL: Record<DigestMethod, string> = {
  'row-text': `coalesce(sum(('x' || substr(md5(row(r.*)::text), 1, 16))::bit(64)::bigint), 0)::text`,
  'record-hash': 'coalesce(sum(hash_record_extended(r.*, 0)), 0)::text',
};

/**
 * Built-in types whose hash depends on the value alone. Others are digested as row text: an enum hashes by
 * its label's oid, which a restore assigns anew, and a type without an extended hash function cannot be hashed.
 */
const VALUE_HASHED_TYPES = [
  'bool',
  'int2',
  'int4',
  'int8',
  'float4',
  'float8',
  'numeric',
  'text',
  'varchar',
  'bpchar',
  'char',
  'name',
  'bytea',
  'uuid',
  'jsonb',
  'date',
  'time',
  'timetz',
  'timestamp',
  'timestamptz',
  'interval',
  'inet',
  'cidr',
  'macaddr',
  'macaddr8',
];

/** Tables with a column of a type outside VALUE_HASHED_TYPES (domains and arrays looked through). */
async function tablesNeedingRowText(tx: TransactionSql): Promise<Set<string>> {
  const rows = await tx<{ table: string }[]>`
    with recursive col as (
      select n.nspname || '.' || c.relname as "table", a.atttypid as t
      from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
      where c.relkind = 'r' and a.attnum > 0 and not a.attisdropped
    ), base as (
      select "table", t from col
      union
      select b."table", case when ty.typtype = 'd' then ty.typbasetype else ty.typelem end
      from base b join pg_type ty on ty.oid = b.t
      where ty.typtype = 'd' or (ty.typelem <> 0 and ty.typsubscript = 'array_subscript_handler'::regproc)
    )
    select distinct b."table" from base b join pg_type ty on ty.oid = b.t
    where not (ty.typtype = 'd' or (ty.typelem <> 0 and ty.typsubscript = 'array_subscript_handler'::regproc))
      and not (ty.typnamespace = 'pg_catalog'::regnamespace and ty.typname = any(${VALUE_HASHED_TYPES}))`;
  return new Set(rows.map((row) => row.table));
}

/** How one table is digested: its qualified name and the method its facts use. */
export interface TableDigest {
  schema: string;
  name: string;
  /** `schema.name`, the key of its facts. */
  table: string;
  method: DigestMethod;
}

/** A digest before it is reduced to 64 bits: sums of parts (a table's ranges) add up to the whole's. */
export interface RowsDigest {
  rows: number;
  sum: bigint;
}

/**
 * Every ordinary table (not system, not temporary or unlogged, not owned by an extension, as pg_dump skips
 * their data) and how to digest it. `recorded`: the methods a backup used, which its verification must use
 * again; a new backup takes record-hash wherever the server (14 and later) and the table's types allow it.
 */
export async function planDigests(
  tx: TransactionSql,
  recorded?: Record<string, TableFacts>,
): Promise<TableDigest[]> {
  const tables = await tx<{ schema: string; name: string }[]>`
    select n.nspname as schema, c.relname as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'r' and c.relpersistence = 'p'
      and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
      and not exists (select 1 from pg_depend d
        where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
    order by 1, 2`;
  const [version] = await tx<{ v: string }[]>`select current_setting('server_version_num') as v`;
  const canHash = Number(version!.v) >= 140000;
  const rowText = canHash ? await tablesNeedingRowText(tx) : new Set<string>();
  return tables.map(({ schema, name }) => {
    const table = `${schema}.${name}`;
    const method: DigestMethod = recorded?.[table]
      ? (recorded[table]!.method ?? 'row-text')
      : canHash && !rowText.has(table)
        ? 'record-hash'
        : 'row-text';
    if (method === 'record-hash' && !canHash)
      throw new Error(
        `The backup digested table ${table} with hash_record_extended, which needs PostgreSQL 14 or later: verify it on PostgreSQL 14 or later.`,
      );
    return { schema, name, table, method };
  });
}

/**
 * Row count and digest of a table's rows, or of those `where` selects; one sequential (or TID range) scan, no
 * sort. `versions`: also the sum of hash(ctid, xmin), which any insert, update or delete of those rows changes.
 */
export async function digestRows(
  tx: TransactionSql,
  digest: TableDigest,
  options: { where?: string; versions?: boolean } = {},
): Promise<RowsDigest & { versions?: bigint }> {
  const versions = options.versions
    ? ', coalesce(sum(hash_record_extended(row(r.ctid, r.xmin), 0)), 0)::text as versions'
    : '';
  // ONLY: rows of inheritance children are counted under the child, as pg_dump dumps them.
  const [row] = await tx.unsafe<{ rows: number; sum: string; versions?: string }[]>(
    `select count(*) as rows, ${DIGEST_SQL[digest.method]} as sum${versions}
     from only ${quoteIdent(digest.schema)}.${quoteIdent(digest.name)} as r${options.where ? ` where ${options.where}` : ''}`,
  );
  return {
    rows: Number(row!.rows),
    sum: BigInt(row!.sum),
    ...(row!.versions === undefined ? {} : { versions: BigInt(row!.versions) }),
  };
}

/** A 64-bit sum as the facts and range fingerprints write it. */
export const hex64 = (sum: bigint) => BigInt.asUintN(64, sum).toString(16).padStart(16, '0');

/**
 * Facts of the tables `digests` names (planDigests): row count and an order-independent digest. `known`: digests
 * already taken in this snapshot (a table's ranges, added up), not scanned again.
 */
export async function computeTableFacts(
  tx: TransactionSql,
  digests: readonly TableDigest[],
  known?: ReadonlyMap<string, RowsDigest>,
): Promise<Record<string, TableFacts>> {
  const facts: Record<string, TableFacts> = {};
  for (const digest of digests) {
    const { rows, sum } = known?.get(digest.table) ?? (await digestRows(tx, digest));
    facts[digest.table] = {
      rows,
      hash: hex64(sum),
      ...(digest.method === 'row-text' ? {} : { method: digest.method }),
    };
  }
  return facts;
}

/** Facts of a database as it is now (one read-only snapshot). */
export async function tableFacts(
  url: string,
  recorded?: Record<string, TableFacts>,
): Promise<Record<string, TableFacts>> {
  return await withSql(url, (sql) =>
    sql.begin('isolation level repeatable read read only', async (tx) => {
      await pinOutputSettings(tx);
      // The database may hold what a dump brought: only built-in functions and operators are called here.
      await tx`select set_config('search_path', 'pg_catalog', true)`;
      return await computeTableFacts(tx, await planDigests(tx, recorded));
    }),
  );
}

/** Compares a database with the facts of a backup; missing and extra tables are mismatches too (I7). */
export async function verifyPostgres(
  url: string,
  facts: PostgresFacts,
): Promise<{ ok: boolean; mismatches: TableMismatch[] }> {
  const actual = await tableFacts(url, facts.tables);
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
