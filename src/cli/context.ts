import { type Config, loadConfig } from '../config/config.ts';
import { openDatabase, type Sql } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { connectServices } from '../embedded/connect.ts';

export interface DatabaseContext {
  config: Config;
  sql: Sql;
}

/**
 * Runs `fn` with a migrated database: the embedded PostgreSQL (found running, or started for the
 * duration of the command) or DATABASE_URL.
 */
export async function withDatabase<T>(
  fn: (ctx: DatabaseContext) => Promise<T>,
  config = loadConfig(),
): Promise<T> {
  const services = await connectServices(config, { postgres: true, redis: false });
  const sql = openDatabase(services.databaseUrl, { max: 4 });
  try {
    await migrate(sql);
    return await fn({ config, sql });
  } finally {
    await sql.end({ timeout: 5 });
    await services.release();
  }
}

/** `--json` output: one JSON document on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
