import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openDatabase } from '../../src/db/connection.ts';
import { migrate } from '../../src/db/migrate.ts';
import { EmbeddedPostgres, type RunningPostgres } from '../../src/embedded/postgres.ts';
import { EmbeddedRedis } from '../../src/embedded/redis.ts';
import { runAsFor } from '../../src/embedded/run-as.ts';

export interface KeyPair {
  cert: string;
  key: string;
}

export interface Certificates {
  /** The CA that signed the server and client certificates. */
  ca: string;
  /** A CA that signed nothing here: the wrong one. */
  otherCa: string;
  /** For localhost and 127.0.0.1 only. */
  server: KeyPair;
  /** Signed by the right CA, for another name only (db.example.invalid). */
  elsewhere: KeyPair;
  /** The client certificate of the role `trendgen_cert`. */
  client: KeyPair;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(dir: string, name: string): KeyPair {
  const pair = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  openssl(
    ['req', '-x509', ...EC, '-keyout', pair.key, '-out', pair.cert, '-days', '2', '-subj', `/CN=${name}`],
    dir,
  );
  return pair;
}

function issue(dir: string, ca: KeyPair, name: string, cn: string, extensions: string): KeyPair {
  const pair = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(ext, `${extensions}\nbasicConstraints=CA:FALSE\n`);
  openssl(['req', '-new', ...EC, '-keyout', pair.key, '-out', csr, '-subj', `/CN=${cn}`], dir);
  const serial = `0x${Date.now().toString(16)}${name.length}`;
  openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-set_serial',
      serial,
      '-out',
      pair.cert,
    ].concat(['-days', '2', '-extfile', ext]),
    dir,
  );
  chmodSync(pair.key, 0o600);
  return pair;
}

/** A CA, a server certificate for localhost and 127.0.0.1 signed by it, a client certificate, and a wrong CA. */
export function makeCertificates(dir: string): Certificates {
  mkdirSync(dir, { recursive: true });
  const ca = makeCa(dir, 'ca');
  const other = makeCa(dir, 'other-ca');
  return {
    ca: ca.cert,
    otherCa: other.cert,
    server: issue(dir, ca, 'server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1'),
    elsewhere: issue(dir, ca, 'elsewhere', 'db.example.invalid', 'subjectAltName=DNS:db.example.invalid'),
    client: issue(dir, ca, 'client', 'trendgen_cert', 'extendedKeyUsage=clientAuth'),
  };
}

export interface TlsPostgres {
  pg: EmbeddedPostgres;
  running: RunningPostgres;
  /** A URL of this server (127.0.0.1 unless `host` says) with the given parameters. */
  url(params: string, options?: { database?: string; host?: string }): string;
}

/**
 * The machine's PostgreSQL with TLS on and pg_hba.conf allowing `hostssl` only (no `host` line: a connection
 * without TLS is refused), listening on 127.0.0.1 and 127.0.0.2 (a name its certificate does not carry). The role
 * `trendgen_cert` logs in by its client certificate; every other role by password.
 */
export async function startTlsPostgres(root: string, certs: Certificates): Promise<TlsPostgres> {
  const pg = new EmbeddedPostgres({
    root,
    user: 'trends',
    database: 'trends',
    port: 0,
    settings: {
      listen_addresses: '127.0.0.1,127.0.0.2',
      ssl: 'on',
      ssl_cert_file: certs.server.cert,
      ssl_key_file: certs.server.key,
      ssl_ca_file: certs.ca,
    },
  });
  pg.initialize();
  writeFileSync(
    path.join(pg.dataDir, 'pg_hba.conf'),
    [
      'local all all scram-sha-256',
      'hostssl all trendgen_cert 127.0.0.0/8 cert',
      'hostssl all all 127.0.0.0/8 scram-sha-256',
      'hostssl replication all 127.0.0.0/8 scram-sha-256',
      '',
    ].join('\n'),
  );
  // The server reads its key as its own user, and refuses a key others can read.
  const runAs = runAsFor('postgres', root);
  if (runAs) chownSync(certs.server.key, runAs.uid, runAs.gid);
  const running = await pg.start();
  const url = (params: string, options: { database?: string; host?: string } = {}) => {
    const plain = pg.url(running.port, options.database ?? 'trends');
    const hosted = options.host ? plain.replace('@127.0.0.1:', `@${options.host}:`) : plain;
    return `${hosted}?${params}`;
  };
  // initdb made only `postgres`: the service's database, and the certificate's role.
  const admin = openDatabase(url(`sslmode=verify-full&sslrootcert=${certs.ca}`, { database: 'postgres' }), {
    max: 1,
  });
  try {
    await admin.unsafe('create database trends');
    await admin.unsafe('create role trendgen_cert login');
  } finally {
    await admin.end({ timeout: 5 });
  }
  return { pg, running, url };
}

export interface TlsVault {
  certs: Certificates;
  server: TlsPostgres;
  /** trendgen's environment: DATABASE_URL with sslmode=verify-full, PGSSLROOTCERT, a Redis, backup folders. */
  env: Record<string, string>;
  /** A URL that verifies the server with the right CA, for the test's own checks. */
  verifiedUrl(database?: string): string;
  close(): Promise<void>;
}

/**
 * A service to back up whose PostgreSQL is TLS-only, migrated, with 500 rows in `tls_ledger`; `extra` adds to its
 * environment (an offsite target…).
 */
export async function startTlsVault(
  dir: string,
  extra: (certs: Certificates) => Promise<Record<string, string>>,
) {
  const certs = makeCertificates(path.join(dir, 'certs'));
  const redis = new EmbeddedRedis({ root: path.join(dir, 'redis'), port: 0, appendfsync: 'everysec' });
  const [server, redisRunning, more] = await Promise.all([
    startTlsPostgres(path.join(dir, 'pg'), certs),
    redis.start(),
    extra(certs),
  ]);
  const env: Record<string, string> = {
    DATABASE_URL: server.url('sslmode=verify-full'),
    PGSSLROOTCERT: certs.ca,
    REDIS_URL: redisRunning.url,
    DATA_DIR: path.join(dir, 'data'),
    STORAGE_URL: `file://${path.join(dir, 'objects')}`,
    PROMPTS_DIR: path.join(dir, 'prompts'),
    BACKUP_DIR: path.join(dir, 'backups'),
    BACKUP_KEY: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'warn',
    // No ~/.postgresql/root.crt may stand in for the CA named here.
    HOME: dir,
    ...more,
  };
  const verifiedUrl = (database = 'trends') =>
    server.url(`sslmode=verify-full&sslrootcert=${certs.ca}`, { database });
  const sql = openDatabase(verifiedUrl(), { max: 1 });
  try {
    await migrate(sql);
    await sql`create table tls_ledger (id serial primary key, note text not null)`;
    await sql`insert into tls_ledger (note) select 'row ' || n from generate_series(1, 500) n`;
  } finally {
    await sql.end({ timeout: 5 });
  }
  return {
    certs,
    server,
    env,
    verifiedUrl,
    close: async () => {
      await redis.stop().catch(() => {});
      await server.pg.stop().catch(() => {});
    },
  } satisfies TlsVault;
}
