import { afterAll, describe, expect, it } from 'vitest';
import { loadMigrations, migrate } from '../../src/db/migrate.ts';
import { testDatabases } from '../support/database.ts';

describe('migrations', () => {
  const databases = testDatabases();
  afterAll(async () => {
    await databases.dropAll();
  });

  it('applies every migration once and is a no-op the second time', async () => {
    const db = await databases.create({ migrate: false });
    const first = await migrate(db.sql);
    expect(first.applied.map((m) => m.version)).toEqual(loadMigrations().map((m) => m.version));
    const second = await migrate(db.sql);
    expect(second.applied).toEqual([]);
    const tables =
      await db.sql`select table_name from information_schema.tables where table_schema = 'public' order by 1`;
    expect(tables.map((t) => t.table_name)).toEqual(
      expect.arrayContaining([
        'objects',
        'prompts',
        'prompt_versions',
        'prompt_events',
        'trends',
        'schema_migrations',
      ]),
    );
  });

  it('refuses a database migrated by a newer trendgen', async () => {
    const db = await databases.create();
    await db.sql`insert into schema_migrations (version, name, checksum) values (9999, 'future', 'x')`;
    await expect(migrate(db.sql)).rejects.toThrow(/newer trendgen/);
  });

  it('keeps prompt history append-only', async () => {
    const db = await databases.create();
    await db.sql`insert into prompts (name) values ('p')`;
    await db.sql`insert into prompt_versions (name, version, sha256, content, origin) values ('p', 1, ${'a'.repeat(64)}, 'x', 'api')`;
    await expect(db.sql`update prompt_versions set content = 'y'`).rejects.toThrow(/append-only/);
    await expect(db.sql`delete from prompt_versions`).rejects.toThrow(/append-only/);
  });
});
