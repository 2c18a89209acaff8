import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { type ConnectionUrl, parseConnectionUrl } from '../lib/connection-url.ts';
import { tlsFailure } from '../lib/tls.ts';

/**
 * TLS to PostgreSQL as libpq reads it, so that trendgen's own connections (postgres.js) and the client programs it
 * runs (pg_dump, pg_restore, psql, pg_basebackup, pg_receivewal, pg_amcheck: libpq) trust the same CA and check
 * the same things: `sslmode`, `sslrootcert`, `sslcert` and `sslkey` from the URL, else from PGSSLMODE,
 * PGSSLROOTCERT, PGSSLCERT and PGSSLKEY; `require` with a CA becomes `verify-ca`; `verify-ca` and `verify-full`
 * refuse to run without a CA (~/.postgresql/root.crt counts, `sslrootcert=system` is the system's CAs).
 */

/** A TLS setting that cannot work, or a server that failed the check: one sentence that says what to change. */
export class DatabaseTlsError extends Error {
  override name = 'DatabaseTlsError';
}

const MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
type SslMode = (typeof MODES)[number];

/** libpq's parameters that postgres.js does not know (it would send them to the server as settings). */
const LIBPQ_SSL_PARAMS = /^ssl(mode|rootcert|cert|key|crl|crldir|password|sni|compression|certmode)$/;

interface TrustedCa {
  /** The file, or `system` for the system's CAs. */
  file: string;
  /** Where it was named, for the sentence: `PGSSLROOTCERT`, `sslrootcert in DATABASE_URL`… */
  from: string;
}

export interface PostgresTls {
  /** Undefined: neither the URL nor PGSSLMODE says, and postgres.js's own `ssl` parameter (if any) applies. */
  mode: SslMode | undefined;
  ca: TrustedCa | undefined;
  /** postgres.js's `ssl` option; undefined leaves it to the URL. */
  ssl: false | 'prefer' | 'require' | tls.ConnectionOptions | undefined;
  /** The URL's parameters without libpq's TLS ones. */
  params: URLSearchParams;
}

function setting(url: ConnectionUrl, env: NodeJS.ProcessEnv, param: string, variable: string) {
  const inUrl = url.params.get(param);
  if (inUrl) return { value: inUrl, from: `${param} in DATABASE_URL` };
  const fromEnv = env[variable];
  return fromEnv ? { value: fromEnv, from: variable } : undefined;
}

function readPem(file: string, from: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new DatabaseTlsError(
      `${from} names ${file}, which cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): give the path of ${what} (PEM).`,
    );
  }
}

/** The TLS settings a PostgreSQL URL and the environment ask for; throws DatabaseTlsError when they cannot work. */
export function postgresTls(url: ConnectionUrl, env: NodeJS.ProcessEnv = process.env): PostgresTls {
  const params = new URLSearchParams([...url.params].filter(([key]) => !LIBPQ_SSL_PARAMS.test(key)));
  const modeSetting = setting(url, env, 'sslmode', 'PGSSLMODE');
  const ca = setting(url, env, 'sslrootcert', 'PGSSLROOTCERT');
  const defaultCa = path.join(os.homedir(), '.postgresql', 'root.crt');
  const trusted: TrustedCa | undefined = ca
    ? { file: ca.value, from: ca.from }
    : existsSync(defaultCa)
      ? { file: defaultCa, from: '~/.postgresql/root.crt' }
      : undefined;
  if (!modeSetting) return { mode: undefined, ca: trusted, ssl: undefined, params };
  if (!(MODES as readonly string[]).includes(modeSetting.value)) {
    throw new DatabaseTlsError(
      `${modeSetting.from} is sslmode=${modeSetting.value}, which PostgreSQL does not know: use disable, prefer, require, verify-ca or verify-full.`,
    );
  }
  let mode = modeSetting.value as SslMode;
  if (mode === 'disable') return { mode, ca: trusted, ssl: false, params };
  if (mode === 'allow' || mode === 'prefer') return { mode, ca: trusted, ssl: 'prefer', params };
  // libpq: "if a root CA file exists, the behavior of sslmode=require will be the same as that of verify-ca".
  if (mode === 'require' && trusted) mode = 'verify-ca';
  const options: tls.ConnectionOptions = {};
  const cert = setting(url, env, 'sslcert', 'PGSSLCERT');
  const key = setting(url, env, 'sslkey', 'PGSSLKEY');
  if (cert || key) {
    if (!cert || !key)
      throw new DatabaseTlsError(
        `${cert ? cert.from : key!.from} is set without ${cert ? 'sslkey (PGSSLKEY)' : 'sslcert (PGSSLCERT)'}: a client certificate needs both its certificate and its key file.`,
      );
    options.cert = readPem(cert.value, cert.from, "the client's certificate");
    options.key = readPem(key.value, key.from, "the client certificate's key");
  }
  if (mode === 'require')
    return { mode, ca: trusted, ssl: cert ? { ...options, rejectUnauthorized: false } : 'require', params };
  if (!trusted) {
    throw new DatabaseTlsError(
      `${modeSetting.from} asks for sslmode=${mode}, which needs the CA that signed the server's certificate: set PGSSLROOTCERT to its file (or add sslrootcert=FILE to DATABASE_URL; sslrootcert=system trusts the system's CAs).`,
    );
  }
  if (trusted.file !== 'system')
    options.ca = readPem(trusted.file, trusted.from, "the CA that signed PostgreSQL's certificate");
  // verify-ca checks the chain only, as libpq does; verify-full also the host name (Node's default check).
  if (mode === 'verify-ca') options.checkServerIdentity = () => undefined;
  return { mode, ca: trusted, ssl: options, params };
}

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** `host[:port]` of a URL's host list. */
function endpoint(host: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]*)(?::(\d+))?$/.exec(host);
  return { host: (match?.[1] ?? host).replace(/^\[|\]$/g, ''), port: Number(match?.[2] ?? 5432) };
}

function explain(error: unknown, where: string, host: string, settings: PostgresTls): string | undefined {
  const failure = tlsFailure(error);
  if (!failure) return undefined;
  const ca = settings.ca;
  const trust = !ca || ca.file === 'system' ? "the system's CAs" : `the CA in ${ca.from} (${ca.file})`;
  if (failure.kind === 'untrusted')
    return `PostgreSQL at ${where} presented a certificate that ${trust} did not sign (${failure.detail}): set PGSSLROOTCERT (or sslrootcert= in DATABASE_URL) to the file of the CA that signed the server's certificate.`;
  if (failure.kind === 'hostname')
    return `PostgreSQL at ${where} presented a certificate issued for ${failure.names ?? 'other names'}, not for ${host}: put a host name the certificate names in DATABASE_URL, or have the certificate reissued for ${host}.`;
  return `PostgreSQL at ${where} presented a certificate that is not valid now (${failure.detail}): renew the server's certificate (or correct this machine's clock).`;
}

/** One server's TLS handshake as postgres.js and libpq make it; resolves unless TLS itself is what fails. */
function probeHost(hostPort: string, settings: PostgresTls, timeoutMs: number): Promise<string | undefined> {
  const { host, port } = endpoint(hostPort);
  const where = `${host}:${port}`;
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let secure: tls.TLSSocket | undefined;
    const done = (outcome: string | undefined) => {
      clearTimeout(timer);
      // Once TLS wraps the socket it owns it: destroying the plain socket under it crashes Node 20 (SIGSEGV).
      if (secure) secure.destroy();
      else socket.destroy();
      resolve(outcome);
    };
    // Not reachable, or too slow: not TLS's fault, and the connection itself will say so.
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on('error', () => done(undefined));
    socket.once('connect', () => socket.write(SSL_REQUEST));
    socket.once('data', (answer: Buffer) => {
      if (answer[0] !== 0x53) {
        done(
          `PostgreSQL at ${where} does not offer TLS, but DATABASE_URL asks for sslmode=${settings.mode}: turn ssl on in the server's configuration, or connect to a server that has it.`,
        );
        return;
      }
      const options = typeof settings.ssl === 'object' ? settings.ssl : { rejectUnauthorized: false };
      secure = tls.connect({
        ...options,
        socket,
        host,
        ...(net.isIP(host) ? {} : { servername: host }),
      });
      secure.once('secureConnect', () => done(undefined));
      secure.on('error', (error) => done(explain(error, where, host, settings)));
    });
  });
}

/**
 * At start-up, before anything connects: when DATABASE_URL asks for TLS, each of its servers is asked for a TLS
 * handshake with the same settings, so a wrong CA, a certificate for another name or a server without TLS stops
 * the process with one sentence instead of a driver's error later. Unreachable servers are left to the caller.
 */
export async function checkDatabaseTls(text: string, timeoutMs = 10_000): Promise<void> {
  const url = parseConnectionUrl(text, { multiHost: true });
  const settings = postgresTls(url);
  if (settings.mode !== 'require' && settings.mode !== 'verify-ca' && settings.mode !== 'verify-full') return;
  // A Unix socket (no host) carries no TLS: libpq ignores sslmode there.
  const hosts = url.hosts.filter((host) => host && !host.startsWith('/'));
  const outcomes = await Promise.all(hosts.map((host) => probeHost(host, settings, timeoutMs)));
  const failed = outcomes.find((outcome) => outcome !== undefined);
  if (failed) throw new DatabaseTlsError(failed);
}
