import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { formatConnectionUrl, parseConnectionUrl } from '../../lib/connection-url.ts';

/** How trendgen runs PostgreSQL's client programs: their connection, their errors, their version. */

// Query parameters libpq understands; postgres.js accepts others (`ssl=…`) that libpq would reject.
const LIBPQ_PARAMS = new Set(
  'sslmode sslrootcert sslcert sslkey sslcrl application_name connect_timeout options target_session_attrs host hostaddr port gssencmode channel_binding'.split(
    ' ',
  ),
);

/**
 * How to hand a connection URL to a libpq program: everything but the password in `dbname` (which `ps`
 * shows), the password in the child's environment (which only the same user can read).
 */
export function libpqConnection(url: string): { dbname: string; env: NodeJS.ProcessEnv; password: string } {
  // libpq takes the failover form (several hosts, target_session_attrs) as postgres.js does.
  const parsed = parseConnectionUrl(url, { multiHost: true });
  const password = parsed.password ?? '';
  const query = new URLSearchParams();
  for (const [key, value] of parsed.params) {
    if (LIBPQ_PARAMS.has(key)) query.set(key, value);
    else if (key === 'ssl' && !query.has('sslmode'))
      query.set('sslmode', value === 'true' ? 'require' : value);
  }
  const dbname = formatConnectionUrl({ ...parsed, scheme: 'postgresql', params: query }, 'omit');
  const env: NodeJS.ProcessEnv = { ...process.env, PGCONNECT_TIMEOUT: process.env.PGCONNECT_TIMEOUT ?? '10' };
  if (password) env.PGPASSWORD = password;
  return { dbname, env, password };
}

/** Runs a client program; `done` rejects with one sentence ending in its stderr tail, the password scrubbed. */
export function run(
  binary: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  secret: string,
  options: { streamStdout?: boolean } = {},
): { child: ChildProcess; done: Promise<string> } {
  const tool = path.basename(binary);
  const child = spawn(binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  // streamStdout: the caller reads child.stdout itself (a dump), and done resolves to ''.
  if (!options.streamStdout)
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const done = new Promise<string>((resolve, reject) => {
    child.once('error', (error) => reject(new Error(`${tool} could not be started: ${error.message}.`)));
    child.once('close', (code, signal) => {
      if (code === 0) return resolve(stdout);
      // The first errors say why (a parallel restore ends with "a worker process died"); else the last lines.
      const lines = stderr.trim().split('\n');
      const errors = lines.filter((l) => /error/i.test(l) && !/worker process died/.test(l));
      let tail = (errors.length ? errors.slice(0, 2) : lines.slice(-4)).join(' ').replace(/\s+/g, ' ');
      if (secret) tail = tail.replaceAll(secret, '***');
      const how = signal ? `was stopped by ${signal}` : `failed with exit code ${code}`;
      reject(new Error(`${tool} ${how}${tail ? `: ${tail}` : '.'}`));
    });
  });
  return { child, done };
}

/** Major version of a PostgreSQL client program (`pg_dump (PostgreSQL) 15.8 …` → 15). */
export function clientMajor(binary: string): number {
  const out = execFileSync(binary, ['--version'], { encoding: 'utf8' });
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(out);
  if (!match) throw new Error(`Cannot read the version of ${binary} from "${out.trim()}".`);
  return Number(match[1]);
}

/** pg_dump refuses a newer server, with a message that does not say what to do: say it first. */
export function assertClientNotOlder(tool: string, client: number, serverVersionNum: number): void {
  const server = serverVersionNum >= 100000 ? Math.floor(serverVersionNum / 10000) : 9;
  if (client < server) {
    throw new Error(
      `${tool} ${client} is older than the server (${server}): install PostgreSQL ${server} client tools.`,
    );
  }
}
