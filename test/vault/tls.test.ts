import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/connection.ts';
import { runCli } from '../support/cli.ts';
import { type S3Server, startS3Server } from '../support/s3-server.ts';
import { tempDir } from '../support/temp.ts';
import { startTlsVault, type TlsVault } from '../support/tls.ts';

/**
 * Level 2's backups: PostgreSQL speaks TLS only (hostssl, sslmode=verify-full with PGSSLROOTCERT) and the offsite
 * target is an S3 server over HTTPS with a private CA (S3_CA_FILE). The client programs go through TLS with the
 * same CA: pg_dump (a snapshot), pg_restore (a restore, as the loader role), pg_restore and pg_amcheck (a drill on
 * DRILL_DATABASE_URL). Continuous protection's pg_receivewal and pg_basebackup: wal/tls.test.ts.
 */
describe('snapshots, restores and drills against TLS-only PostgreSQL and an HTTPS S3 target', {
  timeout: 120_000,
}, () => {
  const temp = tempDir('vault-tls');
  let vault: TlsVault;
  let s3: S3Server | undefined;

  beforeAll(async () => {
    vault = await startTlsVault(temp.dir, async (certs) => {
      s3 = await startS3Server({ buckets: ['offsite'], tls: certs.server });
      return {
        BACKUP_S3_URI: 's3://offsite/trendgen',
        BACKUP_PASSWORD: 'offsite password over tls',
        S3_ENDPOINT: s3.endpoint,
        S3_CA_FILE: certs.ca,
        AWS_ACCESS_KEY_ID: s3.settings.accessKeyId!,
        AWS_SECRET_ACCESS_KEY: s3.settings.secretAccessKey!,
      };
    });
  });

  afterAll(async () => {
    await s3?.stop().catch(() => {});
    await vault?.close();
    temp.remove();
  });

  it('backs up to the local and the HTTPS target, restores and drills, all through TLS', async () => {
    const { env, server } = vault;
    // PGSSLROOTCERT from a .env file (relative to it) reaches pg_dump too, not only trendgen's own connections.
    const { PGSSLROOTCERT: _fromEnvironment, ...withoutCa } = env;
    writeFileSync(path.join(temp.dir, '.env'), 'PGSSLROOTCERT=certs/ca.crt\n');
    const backup = await runCli(['backup', '--json'], withoutCa, { cwd: temp.dir });
    expect(backup.code, backup.stderr).toBe(0);
    expect(JSON.parse(backup.stdout).targets.map((t: { ok: boolean }) => t.ok)).toEqual([true, true]);

    const admin = openDatabase(vault.verifiedUrl(), { max: 1 });
    await admin.unsafe('create database restored');
    await admin.end({ timeout: 5 });
    const into = server.url('sslmode=verify-full', { database: 'restored' });
    const restore = await runCli(['restore', 'latest', '--only', 'postgres', '--to-database', into], env);
    expect(restore.code, restore.stderr).toBe(0);
    const restored = openDatabase(vault.verifiedUrl('restored'), { max: 1 });
    try {
      const [row] = await restored<{ n: number }[]>`select count(*)::int as n from tls_ledger`;
      expect(row!.n).toBe(500);
    } finally {
      await restored.end({ timeout: 5 });
    }

    const drillDatabase = server.url('sslmode=verify-full', { database: 'postgres' });
    const drill = await runCli(['drill', '--json'], { ...env, DRILL_DATABASE_URL: drillDatabase });
    expect(drill.code, drill.stderr).toBe(0);
    expect(JSON.parse(drill.stdout).status).toBe('passed');
  });

  it('names S3_CA_FILE when the HTTPS target presents a certificate another CA signed', async () => {
    const wrong = await runCli(['backup', '--json'], { ...vault.env, S3_CA_FILE: vault.certs.otherCa });
    expect(wrong.code).toBe(1);
    const outcome = JSON.parse(wrong.stdout);
    expect(outcome.targets[0]).toMatchObject({ name: 'local', ok: true });
    expect(outcome.targets[1]).toMatchObject({ name: 's3', ok: false });
    expect(outcome.targets[1].error).toMatch(
      /^The S3 endpoint https:\/\/127\.0\.0\.1:\d+ presented a certificate that neither S3_CA_FILE \(.*other-ca\.crt\) nor a public CA signed .*: set S3_CA_FILE to the file \(PEM\) of the CA that signed it\.$/,
    );
  });
});
