import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** A required program is not installed; the message says how to install it and what else works. */
export class MissingBinaryError extends Error {
  override name = 'MissingBinaryError';
}

const ELSEWHERE = 'or run `docker compose -f deploy/docker-compose.yml up -d`.';

/** PostgreSQL's client programs come in their own package; backups and restores need them with any server. */
const POSTGRES_CLIENTS = new Set([
  'pg_dump',
  'pg_restore',
  'psql',
  'pg_dumpall',
  'pg_basebackup',
  'pg_isready',
]);

/** The sentence for a missing PostgreSQL program: which program, and which package holds it. */
export function missingPostgresProgram(name: string): MissingBinaryError {
  if (POSTGRES_CLIENTS.has(name)) {
    return new MissingBinaryError(
      `The PostgreSQL program ${name} is not installed (backups and restores run it): on Debian/Ubuntu run \`sudo apt-get install -y postgresql-client\`, on macOS \`brew install postgresql@16\`; ${ELSEWHERE}`,
    );
  }
  return new MissingBinaryError(
    `The PostgreSQL server program ${name} is not installed: on Debian/Ubuntu run \`sudo apt-get install -y postgresql\`, on macOS \`brew install postgresql@16\`; or set DATABASE_URL to an existing server, ${ELSEWHERE}`,
  );
}

/** The sentence for a missing Redis program: redis-cli is packaged apart from the server on Debian/Ubuntu. */
export function missingRedisProgram(name: string): MissingBinaryError {
  const apt = name === 'redis-cli' ? 'redis-tools' : 'redis-server';
  return new MissingBinaryError(
    `The Redis program ${name} is not installed: on Debian/Ubuntu run \`sudo apt-get install -y ${apt}\`, on macOS \`brew install redis\`; or set REDIS_URL to an existing server, ${ELSEWHERE}`,
  );
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function versionDirs(parent: string, pattern: RegExp): string[] {
  if (!existsSync(parent)) return [];
  return readdirSync(parent)
    .map((name) => ({ name, match: pattern.exec(name) }))
    .filter((entry) => entry.match)
    .sort((a, b) => Number(b.match![1]) - Number(a.match![1]))
    .map((entry) => path.join(parent, entry.name));
}

/** Folders where PostgreSQL's server programs usually live, newest major version first. */
export function postgresSearchPath(): string[] {
  return [
    ...versionDirs('/usr/lib/postgresql', /^(\d+)$/).map((dir) => path.join(dir, 'bin')),
    ...versionDirs('/usr/pgsql', /^(\d+)$/).map((dir) => path.join(dir, 'bin')),
    ...versionDirs('/opt/homebrew/opt', /^postgresql@(\d+)$/).map((dir) => path.join(dir, 'bin')),
    ...versionDirs('/usr/local/opt', /^postgresql@(\d+)$/).map((dir) => path.join(dir, 'bin')),
    '/opt/homebrew/bin',
    '/usr/local/bin',
  ];
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

/**
 * Finds one of PostgreSQL's programs. The versioned folders come first so that `initdb`, `postgres`
 * and `pg_dump` all come from the same major version, whatever PATH says.
 */
export function findPostgresBinary(name: string): string {
  for (const dir of postgresSearchPath()) {
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  const found = onPath(name);
  if (found) return found;
  throw missingPostgresProgram(name);
}

export function findRedisBinary(name = 'redis-server'): string {
  const found =
    onPath(name) ??
    ['/usr/bin', '/opt/homebrew/bin', '/usr/local/bin'].map((d) => path.join(d, name)).find(isExecutable);
  if (found) return found;
  throw missingRedisProgram(name);
}
