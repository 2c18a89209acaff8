import { describe, expect, it } from 'vitest';
import {
  findPostgresBinary,
  findRedisBinary,
  MissingBinaryError,
  missingPostgresProgram,
} from '../../src/embedded/binaries.ts';

function missing(find: () => string): string {
  try {
    find();
  } catch (error) {
    expect(error).toBeInstanceOf(MissingBinaryError);
    return (error as Error).message;
  }
  throw new Error('expected MissingBinaryError');
}

describe('a missing program is named, with the package that holds it', () => {
  it('the sentence names the program that is missing, not "PostgreSQL is not installed"', () => {
    const message = missing(() => findPostgresBinary('pg_dump_not_here'));
    expect(message).toMatch(/^The PostgreSQL server program pg_dump_not_here is not installed: /);
    expect(message).toContain('sudo apt-get install -y postgresql`');
  });

  it('names pg_dump and postgresql-client when pg_dump is the one missing', () => {
    expect(missingPostgresProgram('pg_dump').message).toBe(
      'The PostgreSQL program pg_dump is not installed (backups and restores run it): on Debian/Ubuntu run `sudo apt-get install -y postgresql-client`, on macOS `brew install postgresql@16`; or run `docker compose -f deploy/docker-compose.yml up -d`.',
    );
  });

  it('names redis-cli and redis-tools', () => {
    expect(missing(() => findRedisBinary('redis-cli-not-here'))).toMatch(
      /^The Redis program redis-cli-not-here is not installed: on Debian\/Ubuntu run `sudo apt-get install -y redis-server`/,
    );
  });
});
