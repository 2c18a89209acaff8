import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sql } from './connection.ts';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');
/** Any fixed number: every trendgen process that migrates takes this advisory lock first. */
const MIGRATION_LOCK_KEY = 7_401_552_331;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((file) => /^\d{4}_[a-z0-9_]+\.sql$/.test(file))
    .sort()
    .map((file) => {
      const sql = readFileSync(path.join(dir, file), 'utf8');
      return {
        version: Number(file.slice(0, 4)),
        name: file.slice(5, -4),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    });
}

export interface MigrationResult {
  applied: Migration[];
  current: number;
  waitedMs: number;
}

/**
 * Applies missing migrations, each in its own transaction, under a session advisory lock so that two
 * processes starting together serialise: the second waits, then finds nothing left to do.
 */
export async function migrate(
  sql: Sql,
  options: { migrations?: Migration[]; onWait?: () => void } = {},
): Promise<MigrationResult> {
  const migrations = options.migrations ?? loadMigrations();
  const connection = await sql.reserve();
  const started = Date.now();
  try {
    // With BACKUP_SYNC=on a commit waits for the WAL receiver, which may not run yet on a first start.
    await connection`set synchronous_commit to local`;
    const [free] = await connection`select pg_try_advisory_lock(${MIGRATION_LOCK_KEY}) as got`;
    if (!free?.got) {
      options.onWait?.();
      await connection`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    }
    const waitedMs = Date.now() - started;
    try {
      await connection`
        create table if not exists schema_migrations (
          version integer primary key,
          name text not null,
          checksum text not null,
          applied_at timestamptz not null default now()
        )`;
      const done = new Map<number, { name: string; checksum: string }>();
      for (const row of await connection`select version, name, checksum from schema_migrations`) {
        done.set(row.version as number, { name: row.name as string, checksum: row.checksum as string });
      }
      for (const [version, row] of done) {
        const known = migrations.find((m) => m.version === version);
        if (!known) {
          throw new Error(
            `The database has migration ${version} (${row.name}), which this version of trendgen does not know: it was migrated by a newer trendgen; upgrade this one.`,
          );
        }
        if (known.checksum !== row.checksum) {
          throw new Error(
            `Migration ${version} (${row.name}) was changed after it was applied; restore the original file.`,
          );
        }
      }
      const applied: Migration[] = [];
      for (const migration of migrations) {
        if (done.has(migration.version)) continue;
        // A reserved connection has no begin(): the transaction is spelled out on it.
        await connection.unsafe('begin');
        try {
          await connection.unsafe(migration.sql);
          await connection`insert into schema_migrations (version, name, checksum) values (${migration.version}, ${migration.name}, ${migration.checksum})`;
          await connection.unsafe('commit');
        } catch (error) {
          await connection.unsafe('rollback');
          throw new Error(
            `Migration ${migration.version} (${migration.name}) failed: ${(error as Error).message}`,
          );
        }
        applied.push(migration);
      }
      const current = migrations.at(-1)?.version ?? 0;
      return { applied, current, waitedMs };
    } finally {
      await connection`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
    }
  } finally {
    await connection`reset synchronous_commit`.catch(() => {});
    connection.release();
  }
}
