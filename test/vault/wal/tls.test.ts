import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../../src/db/connection.ts';
import { sleep } from '../../../src/lib/process.ts';
import { receiverConnection } from '../../../src/vault/wal/receiver.ts';
import { runCli } from '../../support/cli.ts';
import { killTree } from '../../support/processes.ts';
import { tempDir } from '../../support/temp.ts';
import { startTlsVault, type TlsVault } from '../../support/tls.ts';

// I11 on a TLS-only PostgreSQL (hostssl, sslmode=verify-full with PGSSLROOTCERT): pg_receivewal and pg_basebackup
// reach it through TLS with the same CA as trendgen's own connections.
describe('I11 continuous protection against TLS-only PostgreSQL', { timeout: 120_000 }, () => {
  const temp = tempDir('wal-tls');
  let vault: TlsVault;
  let protect: ReturnType<typeof runCli> | undefined;

  beforeAll(async () => {
    vault = await startTlsVault(temp.dir, async () => ({}));
  });

  afterAll(async () => {
    if (protect?.child.pid) killTree(protect.child.pid);
    await vault?.close();
    temp.remove();
  });

  it('streams the WAL and takes its base backup through TLS, the recovery point seconds old', async () => {
    // The CA named in the URL this time (the snapshot test names it in PGSSLROOTCERT): libpq reads it there too.
    const { PGSSLROOTCERT: _inEnvironment, ...env } = vault.env;
    env.DATABASE_URL = vault.server.url(`sslmode=verify-full&sslrootcert=${vault.certs.ca}`);
    protect = runCli(['protect'], env);
    type Status = {
      receiver: { state: string };
      window: unknown;
      sources: Array<{ lagSeconds: number | null }>;
    };
    let status: Status | undefined;
    const sql = openDatabase(vault.verifiedUrl(), { max: 1 });
    try {
      for (let i = 0; i < 120; i++) {
        await sql`insert into tls_ledger (note) values (${`during ${i}`})`;
        const result = await runCli(['status', '--json'], env);
        status = result.stdout ? JSON.parse(result.stdout) : undefined;
        const lag = status?.sources[0]?.lagSeconds;
        if (status?.window && lag != null && lag < 2) break;
        await sleep(500);
      }
      expect(status?.receiver.state).toBe('streaming');
      expect(status?.window, 'a base backup was taken').toBeTruthy();
      expect(status?.sources[0]?.lagSeconds).toBeLessThan(2);
      // The server sees the receiver's replication connection encrypted, not only trendgen's own pool.
      const rows = await sql<{ ssl: boolean }[]>`
        select s.ssl from pg_stat_replication r join pg_stat_ssl s using (pid)
        where r.application_name = 'trendgen_wal'`;
      expect(rows).toEqual([{ ssl: true }]);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  it('hands every host of a failover URL and its TLS parameters to pg_receivewal and pg_basebackup', () => {
    const conn = receiverConnection(
      'postgres://trends:secret@db1:5432,db2:5433/trends?target_session_attrs=primary&sslmode=verify-full&sslrootcert=/etc/ca.pem',
    );
    expect(conn.dbname).toBe(
      'postgresql://trends@db1:5432,db2:5433/trends?target_session_attrs=primary&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=trendgen_wal',
    );
    expect(conn.env.PGPASSWORD).toBe('secret');
  });
});
