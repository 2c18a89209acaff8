import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDatabaseEmpty } from '../../../src/vault/sources/postgres-admin.ts';
import { tableFacts } from '../../../src/vault/sources/postgres-facts.ts';
import { importClassicSql, inject, plainDump, withoutRestrict } from '../../support/classic-dump.ts';
import { runCli } from '../../support/cli.ts';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { startVaultEnv, type VaultEnv } from '../../support/vault-env.ts';

/**
 * Issue 15 item 3: a classic backup's db.sql came from outside the vault. Loaded as it was (psql -f as the
 * --to-database role, a superuser), a crafted one ran programs on this machine through psql's backslash
 * commands and on the database host through privileged SQL. Each hostile dump here is a genuine dump with a
 * few lines put in before its first COPY, so its tables exist when the attack runs.
 */

const marker = path.join(os.tmpdir(), `trendgen-classic-hostile-${randomBytes(6).toString('hex')}`);

const HOSTILE: { name: string; lines: string; says: RegExp }[] = [
  { name: '\\! (a shell command)', lines: `\\! touch ${marker}`, says: /is a psql command \(\\! touch / },
  { name: '\\o |cmd (output to a program)', lines: `\\o |touch ${marker}`, says: /is a psql command/ },
  {
    name: '\\copy … to program',
    lines: `\\copy (select 1) to program 'touch ${marker}'`,
    says: /is a psql command/,
  },
  {
    name: '\\g |cmd in the middle of a line',
    lines: `select 1 \\g |touch ${marker}`,
    says: /is a psql command/,
  },
  {
    name: 'COPY … TO PROGRAM',
    lines: `COPY (select 1) TO PROGRAM 'touch ${marker}';`,
    says: /failed at line \d+ .*pg_execute_server_program/,
  },
  {
    name: 'CREATE ROLE … SUPERUSER',
    lines: 'CREATE ROLE evil SUPERUSER;',
    says: /must be superuser to create superusers/,
  },
  {
    // Inside the load's transaction ALTER SYSTEM is refused anyway: a crafted dump ends that transaction first.
    name: 'ALTER SYSTEM, after ending the transaction',
    lines: "COMMIT;\nALTER SYSTEM SET log_min_duration_statement = '12345';\nBEGIN;",
    says: /permission denied to set parameter "log_min_duration_statement"/,
  },
  {
    // A dump of today's pg_dump restricts itself; a crafted one lifts that with the key its first line shows.
    name: "\\unrestrict with the dump's own key",
    lines: `\\unrestrict KEY\n\\! touch ${marker}`,
    says: /is a psql command \(\\unrestrict /,
  },
  {
    name: 'a shell command after ending the transaction',
    lines: `COMMIT;\nCREATE TABLE public.junk (x int);\n\\! touch ${marker}`,
    says: /is a psql command/,
  },
];

describe('classic restore of a crafted db.sql', () => {
  let vault: VaultEnv;
  let dump: string;
  const targets: TestDatabase[] = [];
  let stamp = 20250101_000000;

  beforeAll(async () => {
    vault = await startVaultEnv('classic-hostile');
    await vault.db.sql`insert into prompts (name, current_version) values ('ghibli', 1)`;
    await vault.db.sql`insert into prompt_versions (name, version, sha256, content, origin)
      values ('ghibli', 1, ${'a'.repeat(64)}, ${'template: "a\tb\\c\nd ünï"\n'}, 'file')`;
    await vault.db.sql`create table extra (id serial primary key, t text, b bytea)`;
    await vault.db
      .sql`insert into extra (t, b) select 'row ' || g || E'\\t\\\\ \\n ✨', decode(md5(g::text), 'hex')
      from generate_series(1, 500) g`;
    dump = plainDump(vault.db.url);
  }, 120_000);

  afterAll(async () => {
    rmSync(marker, { force: true });
    if (vault) {
      await vault.db.sql`drop role if exists evil`;
      await vault.db.sql`alter system reset log_min_duration_statement`;
    }
    await Promise.all(targets.map((t) => t.drop()));
    await vault?.close();
  });

  async function restore(sql: string) {
    const id = await importClassicSql(vault.dir, `${stamp++}`.replace(/^(\d{8})/, '$1_'), sql, vault.env);
    const target = await createTestDatabase({ migrate: false });
    targets.push(target);
    const toDir = path.join(vault.dir, `restored-${id.slice(0, 8)}`);
    const result = await runCli(['restore', id, '--to-database', target.url, '--to-dir', toDir], vault.env);
    return { result, target, toDir };
  }

  it("restores this machine's pg_dump (which writes \\restrict) and an older one's: same rows, files back", async () => {
    expect(dump).toMatch(/^\\restrict [A-Za-z0-9]+$/m);
    expect(dump).toMatch(/ OWNER TO /);
    for (const sql of [dump, withoutRestrict(dump)]) {
      const { result, target, toDir } = await restore(sql);
      expect(result.code, result.stderr).toBe(0);
      expect(await tableFacts(target.url)).toEqual(await tableFacts(vault.db.url));
      expect(readFileSync(path.join(toDir, 'prompts/ghibli.yaml'), 'utf8')).toContain('Ghibli');
      // Loaded by trendgen's unprivileged role, not by the dump's owner or the superuser of the URL.
      const owners = await target.sql<{ owner: string }[]>`
        select distinct pg_get_userbyid(relowner) as owner from pg_class
        where relnamespace = 'public'::regnamespace`;
      expect(owners).toEqual([{ owner: 'trendgen_restored' }]);
    }
  }, 120_000);

  for (const attack of HOSTILE) {
    it(`refuses ${attack.name}: one sentence, nothing run, nothing loaded`, async () => {
      // The attack's own dump: without pg_dump's \\restrict, which would refuse the psql commands put in.
      const key = /^\\restrict (\w+)$/m.exec(dump)![1]!;
      const base = attack.lines.includes('KEY') ? dump : withoutRestrict(dump);
      const { result, target, toDir } = await restore(inject(base, attack.lines.replace('KEY', key)));
      expect(result.code, result.stdout + result.stderr).toBe(1);
      expect(result.stderr).toMatch(/^trendgen: [^\n]+\n?$/);
      expect(result.stderr).toMatch(attack.says);
      expect(result.stderr).toMatch(/nothing of it was loaded into the database t_\w+: /);
      expect(existsSync(marker)).toBe(false);
      const [evil] = await vault.db.sql`select 1 from pg_roles where rolname = 'evil'`;
      expect(evil).toBeUndefined();
      const [altered] = await vault.db.sql`
        select 1 from pg_file_settings where name = 'log_min_duration_statement' and setting = '12345'`;
      expect(altered).toBeUndefined();
      expect(await isDatabaseEmpty(target.url)).toBe(true);
      const [left] = await target.sql`select 1 from pg_proc where pronamespace = 'public'::regnamespace`;
      expect(left).toBeUndefined();
      expect(existsSync(toDir)).toBe(false);
      // The owner role stays powerless (pg_roles is the whole server's: other files' restores may be running).
      const roles = await vault.db.sql<{ name: string; superuser: boolean }[]>`
        select rolname as name, rolsuper as superuser from pg_roles where rolname = 'trendgen_restored'`;
      expect(roles).toEqual([{ name: 'trendgen_restored', superuser: false }]);
    }, 120_000);
  }
});
