import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase } from '../../src/db/connection.ts';
import { checkDatabaseTls } from '../../src/db/tls.ts';
import { SAMPLE_PROMPT } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { testRedisUrl } from '../support/database.ts';
import { startUp, type UpProcess } from '../support/processes.ts';
import { tempDir } from '../support/temp.ts';
import { type Certificates, makeCertificates, startTlsPostgres, type TlsPostgres } from '../support/tls.ts';

/**
 * Level 2: a managed PostgreSQL that speaks TLS only. The machine's PostgreSQL runs with a certificate made here
 * by openssl and pg_hba.conf allowing `hostssl` only; trendgen must verify the server (sslmode=verify-full with
 * PGSSLROOTCERT or sslrootcert=) and refuse, in one sentence and before anything else, a wrong CA or a
 * certificate issued for another host name.
 */
describe('PostgreSQL over TLS only', { timeout: 120_000 }, () => {
  const temp = tempDir('pg-tls');
  let certs: Certificates;
  let server: TlsPostgres;
  let serve: UpProcess | undefined;
  const adminToken = 'tls-admin-token-0123456789abcdef';
  const env = (databaseUrl: string, extra: Record<string, string> = {}) => ({
    DATABASE_URL: databaseUrl,
    REDIS_URL: testRedisUrl(),
    DATA_DIR: path.join(temp.dir, 'data'),
    PROMPTS_DIR: path.join(temp.dir, 'prompts'),
    BACKUP_DIR: path.join(temp.dir, 'backups'),
    ADMIN_TOKEN: adminToken,
    // No ~/.postgresql/root.crt may stand in for the CA the test names.
    HOME: temp.dir,
    PGSSLROOTCERT: '',
    PGSSLMODE: '',
    ...extra,
  });

  beforeAll(async () => {
    certs = makeCertificates(path.join(temp.dir, 'certs'));
    server = await startTlsPostgres(path.join(temp.dir, 'pg'), certs);
  });

  afterAll(async () => {
    await serve?.stop().catch(() => {});
    await server?.pg.stop().catch(() => {});
    temp.remove();
  });

  it('refuses a connection without TLS (the server really is TLS-only)', async () => {
    const plain = openDatabase(server.url('sslmode=disable'), { max: 1 });
    await expect(plain`select 1`).rejects.toThrow(/no pg_hba\.conf entry .*no encryption/);
    await plain.end({ timeout: 1 });
  });

  it('serves the API with sslmode=verify-full and PGSSLROOTCERT, every connection encrypted', async () => {
    serve = await startUp(env(server.url('sslmode=verify-full'), { PGSSLROOTCERT: certs.ca }), {
      command: 'serve',
    });
    const headers = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/yaml' };
    const saved = await fetch(`${serve.baseUrl}/api/v1/prompts/over-tls`, {
      method: 'PUT',
      headers,
      body: SAMPLE_PROMPT('over-tls'),
    });
    expect(saved.status, await saved.clone().text()).toBeLessThan(300);
    const read = await fetch(`${serve.baseUrl}/api/v1/prompts/over-tls`, { headers });
    expect(read.status).toBe(200);
    expect((await fetch(`${serve.baseUrl}/readyz`)).status).toBe(200);
    const check = openDatabase(server.url(`sslmode=verify-full&sslrootcert=${certs.ca}`), { max: 1 });
    try {
      const rows = await check<{ ssl: boolean }[]>`
        select s.ssl from pg_stat_activity a join pg_stat_ssl s using (pid)
        where a.application_name = 'trendgen serve'`;
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.ssl)).toBe(true);
    } finally {
      await check.end({ timeout: 5 });
    }
    await serve.stop();
    serve = undefined;
  });

  it('takes the CA and a client certificate from the URL, as libpq does', async () => {
    const url = server
      .url(
        `sslmode=verify-full&sslrootcert=${certs.ca}&sslcert=${certs.client.cert}&sslkey=${certs.client.key}`,
      )
      .replace(/\/\/trends:[^@]*@/, '//trendgen_cert@');
    await checkDatabaseTls(url);
    const sql = openDatabase(url, { max: 1 });
    try {
      const [row] = await sql<{ user: string; dn: string }[]>`
        select current_user as user, client_dn as dn from pg_stat_ssl where pid = pg_backend_pid()`;
      expect(row).toEqual({ user: 'trendgen_cert', dn: '/CN=trendgen_cert' });
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  it('stops `trendgen serve` at start-up with one sentence when the CA is the wrong one', async () => {
    const result = await runCli(
      ['serve'],
      env(server.url('sslmode=verify-full'), { PGSSLROOTCERT: certs.otherCa }),
    );
    expect(result.code).toBe(1);
    const port = server.running.port;
    expect(result.stderr).toBe(
      `trendgen: PostgreSQL at 127.0.0.1:${port} presented a certificate that the CA in PGSSLROOTCERT (${certs.otherCa}) did not sign (self-signed certificate in certificate chain): set PGSSLROOTCERT (or sslrootcert= in DATABASE_URL) to the file of the CA that signed the server's certificate.\n`,
    );
    // doctor says the same in its PostgreSQL check.
    const doctor = await runCli(
      ['doctor', '--json'],
      env(server.url(`sslmode=verify-full&sslrootcert=${certs.otherCa}`)),
    );
    const check = JSON.parse(doctor.stdout).checks.find((c: { id: string }) => c.id === 'postgres.reachable');
    expect(check.status).toBe('FAIL');
    expect(check.message).toMatch(/the CA in sslrootcert in DATABASE_URL \(.*other-ca\.crt\) did not sign/);
  });

  it('stops start-up with one sentence when the certificate is for another host name', async () => {
    const result = await runCli(
      ['migrate'],
      env(server.url('sslmode=verify-full', { host: '127.0.0.2' }), { PGSSLROOTCERT: certs.ca }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(
      /PostgreSQL at 127\.0\.0\.2:\d+ presented a certificate issued for DNS:localhost, IP Address:127\.0\.0\.1, not for 127\.0\.0\.2: put a host name the certificate names in DATABASE_URL/,
    );
    // verify-ca checks the CA only, as libpq's does: the same address is accepted.
    await checkDatabaseTls(server.url(`sslmode=verify-ca&sslrootcert=${certs.ca}`, { host: '127.0.0.2' }));
  });

  it('says what is missing: no CA for verify-full, no TLS on the server', async () => {
    const noCa = await runCli(['migrate'], env(server.url('sslmode=verify-full')));
    expect(noCa.code).toBe(1);
    expect(noCa.stderr).toMatch(
      /sslmode in DATABASE_URL asks for sslmode=verify-full, which needs the CA that signed the server's certificate: set PGSSLROOTCERT/,
    );
    // The suite's shared PostgreSQL has no TLS at all.
    const plain = `${inject('postgresAdminUrl')}?sslmode=require`;
    await expect(checkDatabaseTls(plain)).rejects.toThrow(
      /^PostgreSQL at 127\.0\.0\.1:\d+ does not offer TLS, but DATABASE_URL asks for sslmode=require/,
    );
  });
});
