import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDatabaseEmpty } from '../../../src/vault/sources/postgres-admin.ts';
import { tableFacts } from '../../../src/vault/sources/postgres-facts.ts';
import { importClassicSql, inject, plainDump, withoutRestrict } from '../../support/classic-dump.ts';
import { runCli } from '../../support/cli.ts';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { startVaultEnv, type VaultEnv } from '../../support/vault-env.ts';

/** A classic restore into a database owned by a role that is not a superuser: with host powers, and without. */
describe('classic restore with the URL of a database owner that is not a superuser', () => {
  let vault: VaultEnv;
  let dump: string;
  const roles: string[] = [];
  const targets: TestDatabase[] = [];
  const marker = path.join(os.tmpdir(), `trendgen-classic-roles-${randomBytes(6).toString('hex')}`);

  beforeAll(async () => {
    vault = await startVaultEnv('classic-roles');
    await vault.db.sql`create table extra (id serial primary key, t text)`;
    await vault.db.sql`insert into extra (t) select 'row ' || g from generate_series(1, 200) g`;
    dump = withoutRestrict(plainDump(vault.db.url));
  }, 120_000);

  afterAll(async () => {
    rmSync(marker, { force: true });
    await Promise.all(targets.map((t) => t.drop()));
    for (const role of roles) await vault?.db.sql.unsafe(`drop role if exists ${role}`);
    await vault?.close();
  });

  /** A fresh empty database owned by a new login role (`grants` given to it), and the URL as that role. */
  async function ownedTarget(grants: string): Promise<{ target: TestDatabase; url: string; role: string }> {
    const target = await createTestDatabase({ migrate: false });
    targets.push(target);
    const role = `classic_${randomBytes(4).toString('hex')}`;
    roles.push(role);
    const name = new URL(target.url).pathname.slice(1);
    await target.sql.unsafe(`create role ${role} login password 'pw' nosuperuser ${grants};
      alter database ${name} owner to ${role}; alter schema public owner to ${role}`);
    const url = new URL(target.url);
    url.username = role;
    url.password = 'pw';
    return { target, url: url.toString(), role };
  }

  async function restore(sql: string, url: string, stamp: string) {
    const id = await importClassicSql(vault.dir, stamp, sql, vault.env);
    const toDir = path.join(vault.dir, `restored-${stamp}`);
    const result = await runCli(['restore', id, '--to-database', url, '--to-dir', toDir], vault.env);
    return { result, toDir };
  }

  it('a role that may run programs on the host is refused before anything is loaded', async () => {
    const { target, url } = await ownedTarget('in role pg_execute_server_program');
    const sql = inject(dump, `COPY (select 1) TO PROGRAM 'touch ${marker}';`);
    const { result, toDir } = await restore(sql, url, '20250201_000000');
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stderr).toMatch(
      /^trendgen: The role classic_\w+ may reach the database host \(pg_execute_server_program\)/,
    );
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(marker)).toBe(false);
    expect(await isDatabaseEmpty(target.url)).toBe(true);
    expect(existsSync(toDir)).toBe(false);
  }, 120_000);

  it('an unprivileged owner loads as itself: its tables, same rows', async () => {
    const { target, url, role } = await ownedTarget('');
    const { result } = await restore(plainDump(vault.db.url), url, '20250202_000000');
    expect(result.code, result.stderr).toBe(0);
    expect(await tableFacts(target.url)).toEqual(await tableFacts(vault.db.url));
    const owners = await target.sql<{ owner: string }[]>`
      select distinct tableowner as owner from pg_tables where schemaname = 'public'`;
    expect(owners).toEqual([{ owner: role }]);
  }, 120_000);

  it('a dump that commits half of itself as that owner: the sentence says the database keeps it', async () => {
    const { target, url } = await ownedTarget('');
    const sql = inject(dump, `COMMIT;\n\\! touch ${marker}`);
    const { result } = await restore(sql, url, '20250203_000000');
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stderr).toMatch(
      /is a psql command .* what it committed before \(it ended the load's transaction itself\) stays in the database t_\w+, so drop and recreate it: restore only/,
    );
    expect(existsSync(marker)).toBe(false);
    expect(await isDatabaseEmpty(target.url)).toBe(false);
  }, 120_000);
});
