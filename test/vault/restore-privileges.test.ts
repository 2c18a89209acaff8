import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { poisonDatabase } from '../support/crafted-dump.ts';
import { createTestDatabase } from '../support/database.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

describe('I7: a dump is loaded by a role that cannot reach the database host', () => {
  let vault: VaultEnv;
  let snapshotId: string;
  const marker = path.join(os.tmpdir(), `trendgen-pwned-${randomBytes(6).toString('hex')}`);
  beforeAll(async () => {
    vault = await startVaultEnv('restore-privileges');
    await poisonDatabase(vault.db.url, marker);
    const backup = await runCli(['backup', '--json'], vault.env);
    expect(backup.code, backup.stderr).toBe(0);
    snapshotId = (JSON.parse(backup.stdout) as { snapshotId: string }).snapshotId;
    expect(existsSync(marker)).toBe(false);
  }, 120_000);
  afterAll(async () => {
    rmSync(marker, { force: true });
    await vault?.close();
  });

  it('restore into a superuser URL: COPY TO PROGRAM fails inside the database, nothing runs on the host', async () => {
    const target = await createTestDatabase({ migrate: false });
    // What a killed restore leaves: its login, expired a day later, goes with the next restore.
    await target.sql.unsafe(`create role trendgen_load_killed000000 login valid until '2000-01-01'`);
    try {
      const restore = await runCli(
        ['restore', snapshotId, '--only', 'postgres', '--to-database', target.url],
        vault.env,
      );
      expect(restore.code, restore.stdout).toBe(1);
      expect(restore.stderr).toMatch(/pg_execute_server_program role to COPY to or from an external program/);
      expect(restore.stderr).not.toMatch(/verified/);
      expect(existsSync(marker)).toBe(false);
      // The owner it loaded as is powerless; a stale login is gone (other files' restores may be running,
      // so only these two roles are looked at: pg_roles is shared by the whole server).
      const roles = await target.sql<{ rolname: string; rolsuper: boolean; rolcanlogin: boolean }[]>`
        select rolname, rolsuper, rolcanlogin from pg_roles
        where rolname in ('trendgen_restored', 'trendgen_load_killed000000')`;
      expect(roles).toEqual([{ rolname: 'trendgen_restored', rolsuper: false, rolcanlogin: false }]);
    } finally {
      await target.drop();
    }
  }, 120_000);

  it('the drill fails loudly and runs nothing on the host', async () => {
    const drill = await runCli(['drill', snapshotId], vault.env);
    expect(drill.code).toBe(1);
    expect(drill.stdout).toMatch(/^FAIL snapshot/);
    expect(drill.stdout).toMatch(/pg_execute_server_program role to COPY to or from an external program/);
    expect(existsSync(marker)).toBe(false);
  }, 180_000);

  it('a restore whose objects are owned by the service role loads as that role', async () => {
    const clean = await startVaultEnv('restore-privileges-clean');
    const target = await createTestDatabase({ migrate: false });
    const role = `svc_${randomBytes(4).toString('hex')}`;
    try {
      const backup = await runCli(['backup', '--json'], clean.env);
      expect(backup.code, backup.stderr).toBe(0);
      const name = new URL(target.url).pathname.slice(1);
      await target.sql.unsafe(`create role ${role} login password 'pw' nosuperuser;
        alter database ${name} owner to ${role}; alter schema public owner to ${role}`);
      const url = new URL(target.url);
      url.username = role;
      url.password = 'pw';
      const restore = await runCli(
        ['restore', 'latest', '--only', 'postgres', '--to-database', url.toString()],
        clean.env,
      );
      expect(restore.code, restore.stderr).toBe(0);
      const owners = await target.sql<{ owner: string }[]>`
        select distinct tableowner as owner from pg_tables where schemaname = 'public'`;
      expect(owners).toEqual([{ owner: role }]);
    } finally {
      await target.drop();
      await target.sql.end().catch(() => {});
      const admin = await createTestDatabase({ migrate: false });
      await admin.sql.unsafe(`drop role if exists ${role}`).catch(() => {});
      await admin.drop();
      await clean.close();
    }
  }, 180_000);
});
