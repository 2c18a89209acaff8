import type { Sql } from '../../db/connection.ts';
import { endpointOf, Unreachable } from './context.ts';
import { type DoctorCheck, type DoctorContext, fail, type Outcome, ok, warn } from './types.ts';

/** The settings that decide whether a committed transaction survives a crash, read in one query. */
const SETTINGS = ['fsync', 'data_checksums', 'synchronous_commit', 'wal_level', 'full_page_writes'] as const;
type Setting = (typeof SETTINGS)[number];

const settingsCache = new WeakMap<Sql, Promise<Map<string, string>>>();

async function settings(ctx: DoctorContext): Promise<Map<Setting, string>> {
  const sql = await ctx.database();
  let cached = settingsCache.get(sql);
  if (!cached) {
    // pg_settings is readable by any role, managed services included (SHOW works too, one at a time).
    cached = sql<Array<{ name: string; setting: string }>>`
      select name, setting from pg_settings where name in ${sql([...SETTINGS])}`.then(
      (rows) => new Map(rows.map((row) => [row.name, row.setting])),
    );
    settingsCache.set(sql, cached);
  }
  return (await cached) as Map<Setting, string>;
}

function settingCheck(name: Setting, judge: (value: string) => Outcome): DoctorCheck {
  return {
    id: `postgres.${name}`,
    run: async (ctx) => {
      const value = (await settings(ctx)).get(name);
      if (value === undefined) return warn(`${name} is not reported by this server`);
      return judge(value);
    },
  };
}

export function postgresChecks(): DoctorCheck[] {
  return [
    {
      id: 'postgres.reachable',
      run: async (ctx) => {
        let sql: Sql;
        try {
          sql = await ctx.database();
        } catch (error) {
          // This check owns the failure; the others that need the database say "not checked".
          if (error instanceof Unreachable) return fail(error.message, error.hint);
          throw error;
        }
        const [row] = await sql<Array<{ version: string; database: string }>>`
          select current_setting('server_version') as version, current_database() as database`;
        const where = ctx.databaseUrl;
        const version = row!.version.split(' ')[0];
        return ok(
          `PostgreSQL ${version} at ${where ? endpointOf(where) : '(unknown)'}, database ${row!.database}`,
        );
      },
    },
    settingCheck('fsync', (value) =>
      value === 'on'
        ? ok('fsync is on: commits reach the disk')
        : fail(
            'fsync is off: a crash or power cut can lose committed data and corrupt the whole cluster',
            'set fsync = on in postgresql.conf (or the provider settings) and reload',
          ),
    ),
    settingCheck('data_checksums', (value) =>
      value === 'on'
        ? ok('data checksums are on: corrupted pages are detected on read')
        : warn(
            'data checksums are off: a corrupted page is read silently and can reach the backups',
            'initdb --data-checksums (or pg_checksums --enable while stopped); many managed services cannot',
          ),
    ),
    settingCheck('synchronous_commit', (value) =>
      value === 'off'
        ? warn(
            'synchronous_commit is off: the last commits before a crash can be lost although clients saw them succeed',
            'set synchronous_commit = on',
          )
        : ok(`synchronous_commit is ${value}`),
    ),
    settingCheck('wal_level', (value) =>
      value === 'replica' || value === 'logical'
        ? ok(`wal_level is ${value}: WAL archiving and point-in-time recovery are possible`)
        : warn(
            `wal_level is ${value}: no WAL archiving, so no point-in-time recovery between snapshots`,
            'set wal_level = replica and restart PostgreSQL',
          ),
    ),
    settingCheck('full_page_writes', (value) =>
      value === 'on'
        ? ok('full_page_writes is on: a page torn by a crash is repaired from the WAL')
        : warn(
            'full_page_writes is off: a page half-written during a crash cannot be repaired (safe only on filesystems with atomic 8 KiB writes, such as ZFS)',
            'set full_page_writes = on',
          ),
    ),
  ];
}
