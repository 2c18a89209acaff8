/**
 * Connection URLs as libpq and Redis clients write them: `scheme://[user[:password]@]host[:port][,host[:port]…]
 * [/path][?params]`. The WHATWG URL parser refuses several hosts (the failover form PostgreSQL documents), so this
 * is parsed by hand, strictly: a user name or password must percent-encode `/ ? #` (as RFC 3986 says); a raw `@`
 * or space in a password is accepted and encoded when the URL is written out again. Errors never quote the URL.
 */

export class ConnectionUrlError extends Error {
  override name = 'ConnectionUrlError';
}

export interface ConnectionUrl {
  /** Without `://`, lower case: `postgres`, `postgresql`, `redis`… */
  scheme: string;
  username: string;
  /** Decoded; from the user info, or from a `password` parameter (moved out of `params`). */
  password: string | undefined;
  /** `host[:port]` each, as written (IPv6 in brackets); empty for a Unix socket given by parameter. */
  hosts: string[];
  /** The path after the hosts, with its leading `/` (`/trends`), or empty. */
  path: string;
  params: URLSearchParams;
}

/** Query parameters that carry a credential, whatever the client: masked wherever a URL is shown. */
export const SECRET_PARAMS = new Set([
  'password',
  'passwd',
  'pwd',
  'pass',
  'sslpassword',
  'sentinel_password',
  'secret',
  'client_secret',
  'token',
  'access_token',
  'api_key',
  'apikey',
  'api-key',
  'key',
  'sig',
  'signature',
  'x-amz-signature',
  'x-amz-credential',
  'x-amz-security-token',
  'auth',
  'authorization',
]);

const HOST = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]/?#@,]*)(:\d{1,5})?$/;
const ENCODE_HINT =
  'characters such as / ? # in a user name or password must be percent-encoded (%2F %3F %23)';

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new ConnectionUrlError(
      `its ${what} holds a malformed percent-encoding (a % not followed by two hex digits)`,
    );
  }
}

/** Parses a connection URL; `multiHost` allows the `host1:5432,host2:5432` list. */
export function parseConnectionUrl(text: string, options: { multiHost?: boolean } = {}): ConnectionUrl {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^#]*)(#.*)?$/s.exec(text.trim());
  if (!match) throw new ConnectionUrlError('it does not start with scheme:// (postgres://, redis://…)');
  const rest = match[2]!;
  const end = rest.search(/[/?]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  const tail = end < 0 ? '' : rest.slice(end);
  // The last @ ends the user info, so a raw @ inside a password still parses.
  const at = authority.lastIndexOf('@');
  const userinfo = at < 0 ? undefined : authority.slice(0, at);
  const hostList = at < 0 ? authority : authority.slice(at + 1);
  const hosts = hostList.split(',');
  if (hosts.length > 1 && !options.multiHost)
    throw new ConnectionUrlError('it names several hosts, which only DATABASE_URL may');
  for (const host of hosts) {
    const parsed = HOST.exec(host);
    if (!parsed || (hosts.length > 1 && !parsed[1]))
      throw new ConnectionUrlError(`its host list is malformed; ${ENCODE_HINT}`);
    if (parsed[2] && Number(parsed[2].slice(1)) > 65535)
      throw new ConnectionUrlError('a port is above 65535');
  }
  const question = tail.indexOf('?');
  const path = question < 0 ? tail : tail.slice(0, question);
  const params = new URLSearchParams(question < 0 ? '' : tail.slice(question + 1));
  let username = '';
  let password: string | undefined;
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    username = decode(colon < 0 ? userinfo : userinfo.slice(0, colon), 'user name');
    if (colon >= 0) password = decode(userinfo.slice(colon + 1), 'password');
  }
  const fromParam = params.get('password');
  if (fromParam !== null) {
    password ??= fromParam;
    params.delete('password');
  }
  return { scheme: match[1]!.toLowerCase(), username, password, hosts, path, params };
}

/** Writes a parsed URL back with its user info encoded; the password kept, masked or left out. */
export function formatConnectionUrl(url: ConnectionUrl, password: 'keep' | 'mask' | 'omit' = 'keep'): string {
  const shownPassword =
    url.password === undefined || password === 'omit'
      ? ''
      : `:${password === 'mask' ? '********' : encodeURIComponent(url.password)}`;
  const user = url.username ? encodeURIComponent(url.username) : '';
  const userinfo = user || shownPassword ? `${user}${shownPassword}@` : '';
  const params = new URLSearchParams(url.params);
  if (password === 'mask')
    for (const key of params.keys()) if (SECRET_PARAMS.has(key.toLowerCase())) params.set(key, '********');
  const query = params.size ? `?${params}` : '';
  return `${url.scheme}://${userinfo}${url.hosts.join(',')}${url.path}${query}`;
}

/** The same URL pointing at another database (`/postgres` for administration). */
export function withDatabase(text: string, database: string): string {
  const url = parseConnectionUrl(text, { multiHost: true });
  return formatConnectionUrl({ ...url, path: `/${encodeURIComponent(database)}` });
}

/** The database a PostgreSQL URL names (decoded), or '' when it names none. */
export function databaseOf(text: string): string {
  return decodeURIComponent(parseConnectionUrl(text, { multiHost: true }).path.slice(1));
}

/**
 * Any value that may be a URL, with every credential masked: the password in the user info and secret
 * parameters. A value that does not parse is masked conservatively (everything between the user name and the
 * last @ of the whole value), so a malformed URL in an error message shows no part of its password either.
 */
export function maskUrl(value: string): string {
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value.trim())) return value;
  try {
    return formatConnectionUrl(parseConnectionUrl(value, { multiHost: true }), 'mask');
  } catch {
    const start = value.indexOf('://') + 3;
    const at = value.lastIndexOf('@');
    let masked = value;
    if (at > start) {
      const colon = value.indexOf(':', start);
      const userEnd = colon > start && colon < at ? colon : start;
      masked = `${value.slice(0, userEnd)}:********@${value.slice(at + 1)}`;
    }
    return masked.replace(/([?&]([^=&#]*)=)([^&#]*)/g, (all, prefix: string, key: string) =>
      SECRET_PARAMS.has(key.toLowerCase()) ? `${prefix}********` : all,
    );
  }
}
