import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { openDatabase, type Sql } from '../../src/db/connection.ts';
import { migrate } from '../../src/db/migrate.ts';

export interface TestDatabase {
  url: string;
  sql: Sql;
  drop(): Promise<void>;
}

/** A fresh, migrated database on the run's shared PostgreSQL. */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const adminUrl = inject('postgresAdminUrl');
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = openDatabase(adminUrl, { max: 1 });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = adminUrl.replace(/\/[^/?]+(\?|$)/, `/${name}$1`);
  const sql = openDatabase(url, { max: 5 });
  if (options.migrate !== false) await migrate(sql);
  return {
    url,
    sql,
    drop: async () => {
      await sql.end({ timeout: 5 });
      const admin2 = openDatabase(adminUrl, { max: 1 });
      await admin2.unsafe(`drop database if exists ${name} with (force)`);
      await admin2.end();
    },
  };
}

/** The databases one test file makes, each dropped by `dropAll` at its end. */
export function testDatabases(): {
  create(options?: { migrate?: boolean }): Promise<TestDatabase>;
  dropAll(): Promise<void>;
} {
  const made: TestDatabase[] = [];
  return {
    async create(options = {}) {
      const db = await createTestDatabase(options);
      made.push(db);
      return db;
    },
    async dropAll() {
      for (const db of made.splice(0)) await db.drop();
    },
  };
}

export function testRedisUrl(): string {
  return inject('redisUrl');
}
