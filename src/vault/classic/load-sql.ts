import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import { databaseOf } from '../../lib/connection-url.ts';
import { isDatabaseEmpty } from '../sources/postgres-admin.ts';
import { libpqConnection } from '../sources/postgres-client.ts';
import type { Loader } from '../sources/postgres-loader.ts';

/**
 * Loading a classic backup's db.sql, a plain-SQL pg_dump that came from outside the vault (the user's old
 * shell script), so it may be crafted. Two kinds of harm, two locks:
 *
 * - psql's own commands (`\! cmd`, `\o |cmd`, `\copy … to program`, `\i`, `\connect`, `\setenv`) run on this
 *   machine as the user running trendgen. psql is started with `\restrict <random key>` before the file
 *   (the mode added for CVE-2025-8714): every backslash command in the file is then refused by psql itself and,
 *   with ON_ERROR_STOP and --single-transaction, the load stops and rolls back. The key is made here and never
 *   written anywhere the file could read it. We chose psql over loading the SQL ourselves (postgres.js simple
 *   queries, COPY blocks streamed) because psql is what made the dump loadable in the first place: its lexer
 *   decides where each statement and each COPY block ends, and a second parser of ours could disagree with it
 *   on a crafted file. A psql without `\restrict` is refused rather than trusted.
 * - SQL that reaches the server's host (`COPY … TO PROGRAM`, `ALTER SYSTEM`, `CREATE ROLE … SUPERUSER`,
 *   `lo_export`): the file is loaded by the restore's unprivileged loader (sources/postgres-loader.ts), as the
 *   native restore loads its dumps, so PostgreSQL refuses them.
 *
 * The filter between the file and psql never removes a backslash command (psql refuses those); it blanks only
 * what pg_dump itself writes and an unprivileged loader cannot run: its own `\restrict KEY` header and
 * `\unrestrict KEY` last line (pg_dump 13.22, 14.19, 15.14, 16.10, 17.6 and later), and its ownership
 * statements `ALTER … OWNER TO role;`, which name the dumping role (the same as pg_restore --no-owner in the
 * native path). Lines are blanked, not removed, so psql's line numbers are the file's.
 */

/** The first releases of each major version whose psql has `\restrict`. */
const RESTRICT_RELEASES = '13.22, 14.19, 15.14, 16.10, 17.6';

/** psql's last words are kept for the error message; a dump's full output could be huge. */
const STDERR_TAIL = 4096;

export class UnsafePsqlError extends Error {
  override name = 'UnsafePsqlError';
}

/** Refuses a psql that cannot be told to refuse backslash commands (one without `\restrict`). */
export function assertPsqlRestricts(psql: string): void {
  const help = execFileSync(psql, ['--help=commands'], { encoding: 'utf8' });
  if (/^\s*\\restrict\b/m.test(help)) return;
  const version = /\(PostgreSQL\)\s+(\S+)/.exec(execFileSync(psql, ['--version'], { encoding: 'utf8' }))?.[1];
  throw new UnsafePsqlError(
    `psql ${version ?? '(unknown version)'} cannot refuse the psql commands a classic dump may hold, so trendgen will not load one with it: install PostgreSQL client tools ${RESTRICT_RELEASES} or newer (any later major version), which have \\restrict.`,
  );
}

const RESTRICT = /^\\restrict ([A-Za-z0-9]+)\s*$/;
const UNRESTRICT = /^\\unrestrict ([A-Za-z0-9]+)\s*$/;
/** pg_dump's ownership statement: one line, `ALTER <kind> <name> OWNER TO <role>;`. */
const OWNER = /^ALTER [A-Z][A-Z ]* \S.* OWNER TO (?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*);\s*$/;
const COPY_FROM_STDIN = /^COPY \S.* FROM stdin;\s*$/;

/**
 * Blanks pg_dump's own `\restrict`/`\unrestrict` lines and its ownership statements, outside COPY data
 * (see above); every other line, backslash commands included, goes to psql as it is.
 */
export class DumpFilter extends Transform {
  /** A character split across two chunks is joined, not mangled. */
  private decoder = new StringDecoder('utf8');
  private rest = '';
  private header = true;
  private key: string | undefined;
  private inCopy = false;
  /** A `\unrestrict KEY` line and the blank lines after it: blanked only if nothing else follows. */
  private held: string[] = [];

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const lines = (this.rest + this.decoder.write(chunk)).split('\n');
    this.rest = lines.pop()!;
    this.push(lines.map((line) => this.line(line)).join(''));
    done();
  }

  override _flush(done: TransformCallback): void {
    this.rest += this.decoder.end();
    let out = this.rest ? this.line(this.rest, false) : '';
    // The held `\unrestrict` was the last line that is not blank: pg_dump's own, blanked.
    if (this.held.length) out = this.held.map(() => '\n').join('') + out;
    this.push(out);
    done();
  }

  /** One line in, what psql gets for it out. */
  private line(raw: string, newline = true): string {
    const end = newline ? '\n' : '';
    const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (this.inCopy) {
      if (text === '\\.') this.inCopy = false;
      return raw + end;
    }
    if (this.held.length) {
      if (text.trim() === '') {
        this.held.push(raw);
        return '';
      }
      // Something follows: the `\unrestrict` goes to psql as it is, which refuses it.
      const released = this.held.map((l) => `${l}\n`).join('');
      this.held = [];
      return released + this.line(raw, newline);
    }
    if (this.header && this.key === undefined) {
      const restrict = RESTRICT.exec(text);
      if (restrict) {
        this.key = restrict[1];
        this.header = false;
        return end;
      }
    }
    if (text.trim() !== '' && !text.startsWith('--')) this.header = false;
    if (this.key !== undefined && UNRESTRICT.exec(text)?.[1] === this.key) {
      this.held.push(raw);
      return '';
    }
    if (OWNER.test(text)) return end;
    if (COPY_FROM_STDIN.test(text)) this.inCopy = true;
    return raw + end;
  }
}

/**
 * Loads a plain-SQL dump into the empty database `targetUrl` as `loader`, in one transaction with psql
 * restricted (see above); rejects with one sentence naming the line that failed and saying what stays.
 */
export async function loadClassicSql(
  psql: string,
  targetUrl: string,
  loader: Pick<Loader, 'url' | 'role' | 'discard'>,
  sqlFile: string,
): Promise<void> {
  const conn = libpqConnection(loader.url);
  const key = randomBytes(24).toString('hex');
  const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '--no-password'];
  args.push('-d', conn.dbname, '-c', `\\restrict ${key}`);
  // The role name is ours (postgres-loader.ts), never the file's.
  if (loader.role) args.push('-c', `set role "${loader.role.replaceAll('"', '""')}"`);
  args.push('-f', '-');
  const child = spawn(psql, args, { env: conn.env, stdio: ['pipe', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    tail = (tail + text).slice(-STDERR_TAIL);
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  // psql stops reading at the first error: the rest of the file has nowhere to go, and that is expected.
  const fed = pipeline(createReadStream(sqlFile), new DumpFilter(), child.stdin).catch((error: unknown) => {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EPIPE' && code !== 'ERR_STREAM_PREMATURE_CLOSE' && code !== 'ERR_STREAM_DESTROYED') {
      throw error;
    }
  });
  const [code] = await Promise.all([exited, fed]);
  if (code === 0) return;
  let said = tail.replaceAll(key, '***');
  if (conn.password) said = said.replaceAll(conn.password, '***');
  // One transaction, but a crafted dump can end it itself (`COMMIT;`) and keep what it wrote before the error:
  // a loader of our own drops that again; with the target's own role nothing tells its objects apart.
  const discarded = await loader.discard().catch(() => false);
  const kept = !discarded && !(await isDatabaseEmpty(targetUrl).catch(() => false));
  throw new Error(await failure(said, code, sqlFile, databaseOf(targetUrl), kept));
}

/** The sentence for a failed load: which line of db.sql, and what psql or PostgreSQL said about it. */
async function failure(
  stderr: string,
  code: number | null,
  sqlFile: string,
  database: string,
  kept: boolean,
): Promise<string> {
  const outcome = kept
    ? `what it committed before (it ended the load's transaction itself) stays in the database ${database}, so drop and recreate it`
    : `nothing of it was loaded into the database ${database}`;
  const lines = stderr.trim().split('\n');
  const at = lines.findIndex((l) => /^psql:<stdin>:\d+: /.test(l));
  if (at < 0) {
    const said = lines.slice(-3).join(' ').replace(/\s+/g, ' ') || `exit code ${code}`;
    return `psql could not load the classic dump and ${outcome}: ${said}`;
  }
  const match = /^psql:<stdin>:(\d+): (.*)$/.exec(lines[at]!)!;
  const lineNo = Number(match[1]);
  // psql's own errors are lower case ("error: backslash commands are restricted", "\unrestrict: wrong key").
  if (match[2]!.startsWith('error: ')) {
    const text = await lineOf(sqlFile, lineNo);
    return `Line ${lineNo} of the classic dump is a psql command (${text}), which trendgen never runs, and ${outcome}: restore only a dump written by pg_dump (without --create).`;
  }
  // The DETAIL line says which object; a HINT about psql's \copy would only mislead here.
  const detail = lines
    .slice(at + 1)
    .filter((l) => l.startsWith('DETAIL:'))
    .slice(0, 1);
  const said = [match[2], ...detail].join(' ').replace(/\s+/g, ' ').trim();
  return `The classic dump failed at line ${lineNo} and ${outcome}: ${said}`;
}

/** Line n of a file, shortened and without control characters, for an error message. */
async function lineOf(file: string, n: number): Promise<string> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  let i = 0;
  let found = '';
  for await (const line of lines) {
    if (++i === n) {
      found = line;
      break;
    }
  }
  lines.close();
  const clean = found.replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
  return clean.length > 80 ? `${clean.slice(0, 79)}…` : clean;
}
