import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** A required program is not installed; the message says how to install it and what else works. */
export class MissingBinaryError extends Error {
  override name = 'MissingBinaryError';
}

const INSTALL_HINTS: Record<'postgres' | 'redis', string> = {
  postgres:
    'PostgreSQL is not installed: on Debian/Ubuntu run `sudo apt-get install -y postgresql`, on macOS `brew install postgresql@16`; ' +
    'or set DATABASE_URL to an existing server, or run `docker compose -f deploy/docker-compose.yml up -d`.',
  redis:
    'Redis is not installed: on Debian/Ubuntu run `sudo apt-get install -y redis-server`, on macOS `brew install redis`; ' +
    'or set REDIS_URL to an existing server, or run `docker compose -f deploy/docker-compose.yml up -d`.',
};

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
  throw new MissingBinaryError(INSTALL_HINTS.postgres);
}

export function findRedisBinary(name = 'redis-server'): string {
  const found =
    onPath(name) ??
    ['/usr/bin', '/opt/homebrew/bin', '/usr/local/bin'].map((d) => path.join(d, name)).find(isExecutable);
  if (found) return found;
  throw new MissingBinaryError(INSTALL_HINTS.redis);
}
