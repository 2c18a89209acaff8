import { createRedisClient, describeRedis, parseRedisUrl, sentinelClient } from './redis-client.ts';
import { tlsFailure } from './tls.ts';

/**
 * Problems no retry cures — a certificate the CA does not vouch for, a host name the certificate does not
 * carry, a refused password — turned into one sentence that says which setting to change. A service retries
 * an unreachable Redis for ever (it may be starting); with these it would retry for ever in silence.
 */
export class RedisSetupError extends Error {
  override name = 'RedisSetupError';
}

// ioredis passes on a Sentinel's failure as text only ("…Last error: <message>"), without Node's error code:
// these read the kind of TLS failure from OpenSSL's and Node's words where lib/tls.ts has no code to go by.
const UNTRUSTED =
  /self[- ]signed certificate|unable to verify the first certificate|unable to get (local )?issuer certificate|certificate signature failure|unable to get issuer/i;
const WRONG_NAME = /does not match certificate's altnames|ERR_TLS_CERT_ALTNAME_INVALID/i;
const EXPIRED = /certificate has expired|certificate is not yet valid/i;
const NOT_TLS = /wrong version number|packet length too long|unknown protocol|ERR_SSL_/i;
const AUTH = /WRONGPASS|NOAUTH|invalid password|AUTH <password> called without any password/i;

/** The sentence for an error that retrying will not cure, or undefined for one that it may (a server down). */
export function redisSetupProblem(error: unknown, url: string): string | undefined {
  const message = error instanceof Error ? error.message : String(error);
  const text = `${(error as { code?: string } | undefined)?.code ?? ''} ${message}`;
  let target: ReturnType<typeof parseRedisUrl>;
  try {
    target = parseRedisUrl(url);
  } catch {
    return undefined;
  }
  // ioredis reports a Sentinel it could not use as "All sentinels are unreachable. Last error: <cause>".
  const sentinels = target.sentinel !== undefined && /All sentinels are unreachable/i.test(message);
  if (target.sentinel && /No such master with that name|invalid reply: null/i.test(message))
    return `the Sentinels ${target.sentinel.addresses.map((a) => `${a.host}:${a.port}`).join(',')} know no master named "${target.sentinel.master}": set REDIS_SENTINEL_MASTER to the name in their \`sentinel monitor\` line.`;
  const where = sentinels
    ? `the Sentinels ${describeRedis(url).replace(/^.* of the Sentinels /, '')}`
    : describeRedis(url);
  const cause = message
    .replace(/^All sentinels are unreachable[^:]*:?\s*(Last error:\s*)?/i, '')
    .trim()
    .replace(/\.$/, '');
  const ca = target.caFile
    ? `the CA in REDIS_TLS_CA (${target.caFile})`
    : 'the system CAs (REDIS_TLS_CA is unset)';
  const kind = tlsFailure(error)?.kind;
  if (kind === 'untrusted' || UNTRUSTED.test(text))
    return `${where} presented a TLS certificate that ${ca} did not sign (${cause}): set REDIS_TLS_CA to the PEM file of the CA that signed the server's certificate.`;
  if (kind === 'hostname' || WRONG_NAME.test(text))
    return `${where} presented a TLS certificate for another host name (${cause}): write in ${sentinels ? 'REDIS_SENTINELS' : target.sentinel ? "the Sentinels' configuration (announce-hostnames)" : 'REDIS_URL'} a host name the certificate names, or give the server a certificate for the name used.`;
  if (kind === 'expired' || EXPIRED.test(text))
    return `${where} presented a TLS certificate outside its validity period (${cause}): renew the server's certificate.`;
  if (target.tls && NOT_TLS.test(text))
    return `${where} does not speak TLS on that port (${cause}): use redis:// in REDIS_URL, or the server's TLS port.`;
  if (AUTH.test(text))
    return sentinels
      ? `${where} refused the credentials (${cause}): set REDIS_SENTINEL_PASSWORD to the Sentinels' password (requirepass of sentinel.conf).`
      : `${where} refused the credentials (${cause}): set the password (and user) in REDIS_URL to the server's.`;
  return undefined;
}

/**
 * One connection without retries, at start-up: throws RedisSetupError when the settings are wrong, and returns
 * quietly when Redis is only unreachable (the service's own clients wait for it).
 */
export async function checkRedisSetup(url: string, timeoutMs = 5000): Promise<void> {
  const errors: unknown[] = [];
  const client = createRedisClient(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    retryStrategy: () => null,
    sentinelRetryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  });
  client.on('error', (error) => errors.push(error));
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    errors.push(error);
  } finally {
    client.disconnect();
  }
  // ioredis reports a Sentinel it could not reach only as "Connection is closed": ask them again, directly.
  const target = parseRedisUrl(url);
  if (target.sentinel && errors.some((error) => /All sentinels are unreachable/.test(String(error))))
    errors.push(...(await sentinelErrors(url, target.sentinel.addresses, timeoutMs)));
  for (const error of errors) {
    const problem = redisSetupProblem(error, url);
    if (problem) throw new RedisSetupError(problem);
  }
}

/** What each Sentinel's own connection says, worded as ioredis words a Sentinel it could not use. */
async function sentinelErrors(
  url: string,
  addresses: Array<{ host: string; port: number }>,
  timeoutMs: number,
): Promise<Error[]> {
  const found: Error[] = [];
  for (const address of addresses) {
    const client = sentinelClient(url, address, timeoutMs);
    const seen: unknown[] = [];
    client.on('error', (error) => seen.push(error));
    await client
      .connect()
      .then(() => client.ping())
      .catch((error) => seen.push(error))
      .finally(() => client.disconnect());
    for (const error of seen) {
      const cause = error instanceof Error ? error.message : String(error);
      found.push(new Error(`All sentinels are unreachable. Last error: ${cause}`));
    }
  }
  return found;
}
